"""Decayed item-to-item co-occurrence: "people who took X next took Y", "often bought with X".

One structure serves both ideas; what differs is which pairs are fed in.
Co-visitation adds (previous item → next item) for each user's consecutive
events; co-purchase adds both directions between items bought (or carted)
by the same user close in time. Counts decay with a half-life by forward decay
in the log domain, as in :mod:`model.popularity`, so they are order-free and
never overflow. Each item keeps at most ``max_neighbours`` strongest
neighbours: memory is bounded whatever the traffic.

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

import heapq
import math
from collections.abc import Collection
from operator import itemgetter


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
        self.rows: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, a: str, b: str, weight: float, ts: float) -> None:
        """Count ``b`` after (or with) ``a``, once, with ``weight`` at ``ts``."""
        if a == b or weight <= 0:
            return
        row = self.rows.setdefault(a, {})
        value = math.log2(weight) + ts / self.half_life_s
        old = row.get(b)
        if old is None:
            row[b] = value
            if len(row) > 2 * self.max_neighbours:  # amortised: prune only when twice over
                keep = heapq.nlargest(self.max_neighbours, row.items(), key=lambda kv: kv[1])
                self.rows[a] = dict(keep)
        else:
            hi, lo = (old, value) if old >= value else (value, old)
            row[b] = hi + math.log2(1.0 + 2.0 ** (lo - hi))

    def add_both(self, a: str, b: str, weight: float, ts: float) -> None:
        self.add(a, b, weight, ts)
        self.add(b, a, weight, ts)

    def score(self, a: str, b: str, now: float) -> float:
        value = self.rows.get(a, {}).get(b)
        return 0.0 if value is None else 2.0 ** (value - now / self.half_life_s)

    def neighbours(self, item: str, n: int, now: float, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``n`` strongest neighbours of ``item`` at ``now``, skipping ``exclude``."""
        row = self.rows.get(item)
        if not row:
            return []
        shift, out = now / self.half_life_s, []
        for b, v in sorted(row.items(), key=itemgetter(1), reverse=True):
            if b not in exclude:
                out.append((b, 2.0 ** (v - shift)))
                if len(out) == n:
                    break
        return out
