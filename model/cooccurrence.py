"""Decayed item-to-item co-occurrence: "people who took X also took Y", "often bought with X".

One structure serves both ideas; what differs is which pairs are fed in.
Co-visitation adds each item a user takes with the items they took just
before it (both ways, or previous → next only); co-purchase adds both directions between items bought (or carted)
by the same user close in time. Counts decay with a half-life by forward decay
in the log domain, as in :mod:`model.popularity`, so they are order-free and
never overflow. Each item keeps at most ``max_neighbours`` strongest
neighbours (pruned back to them when a row reaches twice as many): memory is
bounded whatever the traffic.

A row is kept as arrays (neighbour keys, log-scores) that an increment updates
in place, so a micro-batch reads its seeds' strongest neighbours as arrays
(:meth:`Cooccurrence.neighbour_arrays`) instead of walking and sorting dicts.
Keys are whatever identifies an item: ids for the baselines, index rows for
the recommender.

Workers share the counts: each event's increments go out as :class:`PairCount`
(by item id) to a store every worker reads (``stream.store``, where a Lua script
log-adds them with :func:`log_add`'s very arithmetic), and a worker installs the
shared rows it needs with :meth:`Cooccurrence.set_row`. The in-process replay
keeps the one in-memory copy.

Examples
--------
>>> co = Cooccurrence(half_life_s=3600.0)
>>> co.add("tent", "sleeping bag", 1.0, ts=0.0)
>>> co.add("tent", "sleeping bag", 1.0, ts=0.0)
>>> co.add("tent", "stove", 1.0, ts=7200.0)
>>> [(item, round(score, 2)) for item, score in co.neighbours("tent", 5, now=7200.0)]
[('stove', 1.0), ('sleeping bag', 0.5)]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Sequence
from typing import NamedTuple

import numpy as np

_LN2 = math.log(2.0)


def log_add(old: float, value: float) -> float:
    """``log2(2**old + 2**value)``, computed exactly as the shared store's Lua script does.

    Same operations in the same order (C's ``pow`` and ``log``), so a worker's local
    row and the shared one agree to the last bit when they took the same increments
    in the same order.
    """
    m = max(old, value)
    return m + math.log(2.0 ** (old - m) + 2.0 ** (value - m)) / _LN2


class PairCount(NamedTuple):
    """One event's increment to one pair, by item id: what goes to the shared counts.

    A named tuple, not a dataclass: an event makes dozens of them (a frozen dataclass costs
    several times as much to build, on the worker's hot path).
    """

    #: Which counts: ``"covisit"`` (took ``item``, then ``neighbour``) or ``"bundle"`` (bought together).
    table: str
    item: str
    neighbour: str
    #: Forward-decayed log2 increment: ``log2(weight) + ts / half_life_s``.
    log: float


class _Row:
    """One item's neighbours: keys and forward-decayed log2 counts as arrays, and where each key sits.

    Both arrays grow by doubling and only their first ``n`` entries are live, so an
    increment is an O(1) write and a read takes slices, with no list to convert.
    """

    __slots__ = ("n", "keys", "logs", "at", "top", "top_at", "top_floor")

    def __init__(self, first_key: Hashable, capacity: int = 8) -> None:
        self.n = 0
        # Index rows (ints) for the recommender, ids for the baselines.
        dtype = np.int64 if isinstance(first_key, (int, np.integer)) else object
        self.keys = np.empty(capacity, dtype=dtype)
        self.logs = np.empty(capacity, dtype=np.float64)
        self.at: dict[Hashable, int] = {}
        #: Positions of the strongest ``max_neighbours`` entries (None: not known), as an array and
        #: a set, and the weakest of their logs when they were found. Counts only grow, so the set
        #: stands until an entry outside it passes that floor: most increments leave it alone.
        self.top: np.ndarray | None = None
        self.top_at: frozenset[int] = frozenset()
        self.top_floor = -np.inf

    def append(self, key: Hashable, value: float) -> None:
        at = self.at[key] = self.n
        if at == len(self.logs):
            self.keys = np.concatenate([self.keys, np.empty_like(self.keys)])
            self.logs = np.concatenate([self.logs, np.empty_like(self.logs)])
        self.keys[at], self.logs[at] = key, value
        self.n += 1
        self.grew(at, value)

    def grew(self, at: int, value: float) -> None:
        """Entry ``at`` now holds ``value``: forget the strongest set if the entry may have joined it."""
        if self.top is not None and value > self.top_floor and at not in self.top_at:
            self.top = None

    def strongest(self, n: int) -> np.ndarray:
        """Positions of the ``n`` largest logs (the row has more than ``n`` entries)."""
        if self.top is None:
            logs = self.logs[: self.n]
            self.top = np.argpartition(-logs, n - 1)[:n]
            self.top_at = frozenset(self.top.tolist())
            self.top_floor = float(logs[self.top].min())
        return self.top

    def keep(self, positions: np.ndarray) -> None:
        """Keep only the entries at ``positions`` (ascending), in that order."""
        self.n = len(positions)
        capacity = max(8, 2 * self.n)
        keys, logs = np.empty(capacity, dtype=self.keys.dtype), np.empty(capacity)
        keys[: self.n], logs[: self.n] = self.keys[positions], self.logs[positions]
        self.keys, self.logs = keys, logs
        self.at = {b: i for i, b in enumerate(keys[: self.n].tolist())}
        self.top = None


class Cooccurrence:
    """Decayed, bounded counts of item pairs.

    Parameters
    ----------
    half_life_s
        How fast a pair's count halves.
    max_neighbours
        How many neighbours each item keeps (the strongest, by decayed count).
    """

    def __init__(self, half_life_s: float, max_neighbours: int = 100):
        self.half_life_s = float(half_life_s)
        self.max_neighbours = max_neighbours
        self.rows: dict[Hashable, _Row] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def as_dict(self) -> dict[Hashable, dict[Hashable, float]]:
        """Every count as ``{item: {neighbour: log2 score}}`` (for inspection and comparisons)."""
        return {a: dict(zip(row.keys[: row.n].tolist(), row.logs[: row.n].tolist())) for a, row in self.rows.items()}

    def pairs(self) -> int:
        """How many (item, neighbour) counts are kept."""
        return sum(row.n for row in self.rows.values())

    def log_increment(self, weight: float, ts: float) -> float:
        """The forward-decayed log2 count that ``weight`` at ``ts`` adds."""
        return math.log2(weight) + ts / self.half_life_s

    def add(self, a: Hashable, b: Hashable, weight: float, ts: float) -> None:
        """Count ``b`` after (or with) ``a``, once, with ``weight`` at ``ts``."""
        if a != b and weight > 0:
            self.add_log(a, b, self.log_increment(weight, ts))

    def add_log(self, a: Hashable, b: Hashable, value: float) -> None:
        """Add a forward-decayed log2 increment (:meth:`log_increment`) to the pair (a, b)."""
        row = self.rows.get(a)
        if row is None:
            row = self.rows[a] = _Row(b)
        at = row.at.get(b)
        if at is not None:
            row.logs[at] = new = log_add(float(row.logs[at]), value)
            row.grew(at, new)
            return
        row.append(b, value)
        if row.n > 2 * self.max_neighbours:  # amortised: prune only when twice over
            self._prune(row)

    def add_both(self, a: Hashable, b: Hashable, weight: float, ts: float) -> None:
        self.add(a, b, weight, ts)
        self.add(b, a, weight, ts)

    def set_row(self, a: Hashable, keys: Sequence[Hashable], logs: Sequence[float]) -> None:
        """Replace ``a``'s row with the shared store's copy of it (an empty one forgets it)."""
        if not len(keys):
            self.rows.pop(a, None)
            return
        row = self.rows[a] = _Row(keys[0], capacity=max(8, 2 * len(keys)))
        row.n = len(keys)
        row.keys[: row.n], row.logs[: row.n] = keys, logs
        row.at = {b: i for i, b in enumerate(keys)}
        if row.n > 2 * self.max_neighbours:
            self._prune(row)

    def remove(self, item: Hashable) -> None:
        """Forget ``item``'s own row (entries pointing at it are skipped by whoever knows it left)."""
        self.rows.pop(item, None)

    def neighbour_arrays(self, item: Hashable) -> tuple[np.ndarray, np.ndarray]:
        """``item``'s strongest ``max_neighbours`` neighbours as (keys, log2 scores), in no particular order.

        Scores are forward-decayed logs: ``2 ** (log - now / half_life_s)`` is the count at
        ``now``. A batched read sums them per candidate, so it needs the set, not an order:
        a row within its bound is returned as views of itself (read them before the next
        increment), and a longer one is partitioned, not sorted, only when an increment may
        have changed which entries are the strongest.
        """
        row = self.rows.get(item)
        if row is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if row.n <= self.max_neighbours:
            return row.keys[: row.n], row.logs[: row.n]
        top = row.strongest(self.max_neighbours)
        return row.keys[top], row.logs[top]

    def neighbour_entry(self, item: Hashable, neighbour: Hashable) -> tuple[np.ndarray, np.ndarray]:
        """``neighbour``'s entry in :meth:`neighbour_arrays` of ``item`` (length 1), or empty arrays if not there.

        The same entry the full read would give, found without gathering the rest: what
        scoring one known candidate needs.
        """
        row = self.rows.get(item)
        at = None if row is None else row.at.get(neighbour)
        if at is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if row.n > self.max_neighbours:
            row.strongest(self.max_neighbours)
            if at not in row.top_at:
                return np.zeros(0, dtype=np.int64), np.zeros(0)
        return row.keys[at:at + 1], row.logs[at:at + 1]

    def score(self, a: Hashable, b: Hashable, now: float) -> float:
        row = self.rows.get(a)
        at = None if row is None else row.at.get(b)
        return 0.0 if at is None else 2.0 ** (float(row.logs[at]) - now / self.half_life_s)

    def neighbours(self, item: Hashable, n: int, now: float,
                   exclude: Collection[Hashable] = ()) -> list[tuple[Hashable, float]]:
        """The ``n`` strongest neighbours of ``item`` at ``now``, skipping ``exclude``."""
        keys, logs = self.neighbour_arrays(item)
        order = np.argsort(-logs, kind="stable")
        shift, out = now / self.half_life_s, []
        for b, v in zip(keys[order].tolist(), logs[order].tolist()):
            if b not in exclude:
                out.append((b, 2.0 ** (v - shift)))
                if len(out) == n:
                    break
        return out

    def _prune(self, row: _Row) -> None:
        row.keep(np.sort(np.argsort(-row.logs[: row.n], kind="stable")[: self.max_neighbours]))
