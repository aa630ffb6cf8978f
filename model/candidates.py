"""The candidates of a whole micro-batch of requests, from every source at once, as arrays.

A candidate is a pair (request, index row). Every source answers for all the
batch's requests in one call: one index search for every request's content
directions, one merge of the seed items' neighbour arrays for co-visitation and
co-purchase, one popularity ranking per scene shown in the batch, one search
of the new items. Pairs are identified by ``key = request * rows + row``, so
the union, the deduplication and the lookups of each source's scores are
``np.unique`` and ``np.searchsorted`` over the whole batch rather than Python
work per candidate.

>>> top_per_group(np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.9, 0.5, 0.3, 0.7]), 2).tolist()
[1, 2, 4, 3]
"""

from __future__ import annotations

import dataclasses

import numpy as np


def top_per_group(groups: np.ndarray, values: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    """Positions of the ``n`` largest ``values`` of each group (``n`` per group, or one for all), by group, best first.

    Ties keep their order (a stable sort), so the same input always gives the same lists.
    """
    order = np.lexsort((-values, groups))
    sorted_groups = groups[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_groups, sorted_groups, side="left")
    limit = n[sorted_groups] if isinstance(n, np.ndarray) else n
    return order[rank < limit]


@dataclasses.dataclass
class PairScores:
    """Summed neighbour scores per (request, row) key, with the seed item that gave the most."""

    keys: np.ndarray
    totals: np.ndarray
    anchors: np.ndarray

    @classmethod
    def empty(cls) -> PairScores:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64))

    @classmethod
    def merge(cls, requests: np.ndarray, rows: np.ndarray, scores: np.ndarray, seeds: np.ndarray,
              n_rows: int) -> PairScores:
        """Sum ``scores`` per (request, row); the anchor is the seed row of the largest single contribution."""
        if not len(rows):
            return cls.empty()
        keys = requests * n_rows + rows
        # One stable sort by key: the sums and each key's strongest contribution are then
        # reductions over its run of equal keys, with no second sort by score.
        order = np.argsort(keys, kind="stable")
        keys, scores, seeds = keys[order], scores[order], seeds[order]
        run_starts = np.r_[True, keys[1:] != keys[:-1]]
        starts, group = np.flatnonzero(run_starts), np.cumsum(run_starts) - 1
        totals = np.add.reduceat(scores, starts)
        strongest = np.flatnonzero(scores == np.maximum.reduceat(scores, starts)[group])
        first = strongest[np.searchsorted(group[strongest], np.arange(len(starts)))]  # ties: the earliest
        return cls(keys[starts], totals, seeds[first])

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(total score, anchor row) for each of ``keys``; 0 and -1 where there is none."""
        at = np.searchsorted(self.keys, keys)
        at = np.minimum(at, max(len(self.keys) - 1, 0))
        found = (self.keys[at] == keys) if len(self.keys) else np.zeros(len(keys), dtype=bool)
        totals = np.where(found, self.totals[at] if len(self.keys) else 0.0, 0.0)
        anchors = np.where(found, self.anchors[at] if len(self.keys) else -1, -1)
        return totals, anchors


@dataclasses.dataclass
class Candidates:
    """Every candidate pair of a batch, grouped by request (sorted by request, then row).

    Attributes
    ----------
    requests, rows
        The pair: which request, which index row.
    popular
        Whether a popularity source proposed it (it may honestly be called trending).
    new_cosine
        For new items proposed for exploration: their cosine to the request's last item; NaN otherwise.
    """

    requests: np.ndarray
    rows: np.ndarray
    popular: np.ndarray
    new_cosine: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self, n_rows: int) -> np.ndarray:
        return self.requests * n_rows + self.rows

    def bounds(self, n_requests: int) -> np.ndarray:
        """``bounds[b]:bounds[b + 1]`` are request ``b``'s candidates."""
        return np.searchsorted(self.requests, np.arange(n_requests + 1))

    @classmethod
    def union(cls, proposals: list[tuple[np.ndarray, np.ndarray]], popular: list[tuple[np.ndarray, np.ndarray]],
              new: tuple[np.ndarray, np.ndarray, np.ndarray], n_rows: int) -> Candidates:
        """Every pair some source proposed, once."""
        parts = [r * n_rows + rows for r, rows in proposals + popular] + [new[0] * n_rows + new[1]]
        keys = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        popular_keys = np.concatenate([r * n_rows + rows for r, rows in popular]) if popular else np.zeros(0, int)
        new_keys, new_cos = new[0] * n_rows + new[1], new[2]
        cosine = np.full(len(keys), np.nan)
        if len(new_keys):
            order = np.argsort(new_keys)
            at = np.searchsorted(keys, new_keys[order])
            cosine[at] = new_cos[order]
        popular_flags = np.zeros(len(keys), dtype=bool)
        popular_flags[np.searchsorted(keys, popular_keys)] = True  # every popular key is one of ``keys``
        return cls(keys // n_rows, keys % n_rows, popular_flags, cosine)
