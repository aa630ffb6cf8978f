"""A recorded dataset as a stream: a catalogue of items and its events in time order.

Loaders (:mod:`model.datasets.movielens`, :mod:`model.datasets.jsonl`) fill a
:class:`Dataset`. A bad line is counted with its reason and skipped, never
fatal: a recorded log with a few broken lines is still worth replaying.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from pathlib import Path

from model.schema import Event, Item

#: How many skipped lines are quoted in :attr:`Dataset.examples`; the rest are only counted.
MAX_EXAMPLES = 10


@dataclasses.dataclass
class Dataset:
    """A catalogue and its events, sorted by ``ts``; unpacks as ``items, events``.

    Attributes
    ----------
    name
        Where it came from, e.g. ``"movielens-100k"``.
    items
        The catalogue, in file order.
    events
        The events, sorted by ``ts`` (ties keep file order).
    skipped
        Lines skipped, by ``"<file>: <reason>"``.
    examples
        The first few skipped lines as ``"<file>:<line>: <reason>"``.
    """

    name: str
    items: list[Item]
    events: list[Event]
    skipped: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    examples: list[str] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator:
        # The loaders' results read as the (items, events) pair most callers want.
        return iter((self.items, self.events))

    def skip(self, file: str, line: int, reason: str) -> None:
        """Count one bad line of ``file`` (1-based ``line``) and quote the first few."""
        self.skipped[f"{file}: {reason}"] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{file}:{line}: {reason}")

    def summary(self) -> dict:
        """Sizes and time span, for reports."""
        ts = [e.ts for e in self.events]
        return {
            "name": self.name,
            "items": len(self.items),
            "events": len(self.events),
            "users": len({e.user_id for e in self.events}),
            "items_in_events": len({e.item_id for e in self.events}),
            "first_ts": min(ts, default=None),
            "last_ts": max(ts, default=None),
            "event_types": dict(collections.Counter(e.type for e in self.events)),
            "skipped": dict(self.skipped),
            "skipped_examples": list(self.examples),
        }


def read_text(path: Path) -> str:
    # 100K and 1M are latin-1, "latest" is UTF-8; latin-1 decodes any bytes, so it is the fallback.
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    # Not str.splitlines(): that also breaks at \x85 and \x1c-\x1e, which latin-1 text may hold.
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line
