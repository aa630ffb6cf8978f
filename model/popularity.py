"""Decayed popularity, kept by forward decay in the log domain.

An item's popularity at time ``t`` is ``Σ_i w_i · 2^(-(t - t_i)/h)``. Rather than
decaying every item at every event, each event adds ``w_i · 2^(t_i/h)`` (forward
decay, Cormode et al. 2009), and the common factor ``2^(-t/h)`` is applied
only when a score is read. The sums are kept as base-2 logarithms so that
``2^(t_i/h)`` never overflows, whatever the clock. Adding is commutative, so
the result does not depend on event order, and sums kept by different workers
merge by log-add.

Examples
--------
>>> pop = DecayedPopularity(half_life_s=3600.0)
>>> pop.observe("a", 1.0, ts=0.0)
>>> pop.observe("b", 1.0, ts=3600.0)
>>> pop.observe("b", 1.0, ts=3600.0)
>>> [(item, round(score, 3)) for item, score in pop.top(2, now=3600.0)]
[('b', 2.0), ('a', 0.5)]
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

#: How many of the most popular items a ranking can reach quickly (more fall back to a full scan).
HOT = 4096


class DecayedPopularity:
    """Exponentially decayed popularity with half-life ``half_life_s``.

    Attributes
    ----------
    log_scores
        ``log2(Σ w_i · 2^(t_i/h))`` per item slot; ``-inf`` for never seen.
    """

    def __init__(self, half_life_s: float):
        self.half_life_s = float(half_life_s)
        self.ids: list[str] = []
        self.slots: dict[str, int] = {}
        self.log_scores = np.full(64, -np.inf)
        self.first_ts = np.full(64, np.inf)
        #: Interactions counted per slot, undecayed: how much evidence an item has (new items have little).
        self.counts = np.zeros(64, dtype=np.int64)
        #: Events observed: what a cached ranking is as old as.
        self.observed = 0
        #: Slots that may be among the best :data:`HOT` (a superset of them): rankings look only here.
        #: Forward-decayed sums only grow, so an item can only enter the top by being counted, and
        #: every count is checked against the floor; the set is trimmed back when it doubles.
        self._hot: set[int] = set()
        self._floor = -np.inf
        #: Index row → slot (-1: none), for the recommender's vectorised reads of whole batches.
        self.slot_of_row = np.full(64, -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def log_increment(self, weight: float, ts: float) -> float:
        """The forward-decayed log2 weight that one event adds (what a shared store log-adds)."""
        return float(np.log2(weight) + ts / self.half_life_s)

    def observe(self, item_id: str, weight: float, ts: float) -> None:
        self.merge_log(item_id, self.log_increment(weight, ts))
        slot = self.slots[item_id]
        self.first_ts[slot] = min(self.first_ts[slot], ts)
        self.counts[slot] += 1
        self.observed += 1

    def bind(self, item_id: str, row: int) -> None:
        """Say that ``item_id`` lives at index row ``row``, so the ``*_at`` reads find it by row."""
        if row >= len(self.slot_of_row):
            grown = np.full(max(2 * len(self.slot_of_row), row + 1), -1, dtype=np.int64)
            grown[: len(self.slot_of_row)] = self.slot_of_row
            self.slot_of_row = grown
        self.slot_of_row[row] = self._slot(item_id)

    def unbind(self, row: int) -> None:
        """The row was freed (its item left the catalogue): it no longer reads as that item."""
        if row < len(self.slot_of_row):
            self.slot_of_row[row] = -1

    def scores_at(self, rows: np.ndarray, now: float | np.ndarray) -> np.ndarray:
        """Decayed scores at ``now`` of the items at index ``rows`` (0 for never seen)."""
        logs = self._at(rows, self.log_scores, -np.inf)
        return np.exp2(logs - np.asarray(now) / self.half_life_s)

    def first_seen_at(self, rows: np.ndarray) -> np.ndarray:
        return self._at(rows, self.first_ts, np.inf)

    def counts_at(self, rows: np.ndarray) -> np.ndarray:
        return self._at(rows, self.counts, 0)

    def _at(self, rows: np.ndarray, values: np.ndarray, missing) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and rows.max() >= len(self.slot_of_row):  # rows never bound: none seen
            slots = np.where(rows < len(self.slot_of_row),
                             self.slot_of_row[np.minimum(rows, len(self.slot_of_row) - 1)], -1)
        else:
            slots = self.slot_of_row[rows]
        return np.where(slots >= 0, values[slots], missing)  # slot -1 reads the last value, then is replaced

    def count(self, item_id: str) -> int:
        """Interactions observed for ``item_id`` (0 for never seen)."""
        slot = self.slots.get(item_id)
        return 0 if slot is None else int(self.counts[slot])

    def merge_log(self, item_id: str, log_value: float) -> None:
        """Log-add ``log_value`` into ``item_id``'s sum."""
        slot = self._slot(item_id)
        self.log_scores[slot] = np.logaddexp2(self.log_scores[slot], log_value)
        self._touched(slot)

    def _touched(self, slot: int) -> None:
        if slot in self._hot or not (len(self._hot) < HOT or self.log_scores[slot] > self._floor):
            return
        self._hot.add(slot)
        if len(self._hot) > 2 * HOT:
            hot = np.fromiter(self._hot, dtype=np.int64, count=len(self._hot))
            keep = hot[np.argpartition(-self.log_scores[hot], HOT - 1)[:HOT]]
            self._hot, self._floor = set(keep.tolist()), float(self.log_scores[keep].min())

    def set_log(self, items: Iterable[tuple[str, float]]) -> None:
        """Overwrite sums with ones read from a shared store."""
        for item_id, log_value in items:
            # _slot() first: it may grow (replace) log_scores, and `a[f()] = v` would write
            # into the array as it was before f() ran (found by the fault suite on restart).
            slot = self._slot(item_id)
            self.log_scores[slot] = log_value
            self._hot.discard(slot)  # the new value may be lower: judged afresh
            self._touched(slot)

    def set_counts(self, items: Iterable[tuple[str, int]]) -> None:
        """Overwrite interaction counts with ones read from a shared store."""
        for item_id, n in items:
            slot = self._slot(item_id)  # first: it may grow (replace) the arrays
            self.counts[slot] = n

    def score(self, item_id: str, now: float) -> float:
        slot = self.slots.get(item_id)
        return 0.0 if slot is None else float(np.exp2(self.log_scores[slot] - now / self.half_life_s))

    def scores(self, item_ids: list[str], now: float) -> np.ndarray:
        """Decayed scores of many items at ``now`` (0 for never seen), in one vectorised step."""
        slots = np.array([self.slots.get(i, -1) for i in item_ids], dtype=np.int64)
        logs = np.where(slots >= 0, self.log_scores[slots], -np.inf)
        return np.exp2(logs - now / self.half_life_s)

    def top_ids(self, n: int, exclude: Collection[str] = ()) -> list[str]:
        """The ids of the ``n`` most popular items, skipping ``exclude`` (no scores: cheaper)."""
        return [self.ids[i] for i in self._ranked_slots(n, exclude)]

    def top(self, n: int, now: float, exclude: Collection[str] = ()) -> list[tuple[str, float]]:
        """The ``n`` most popular items at ``now`` with their decayed scores, skipping ``exclude``."""
        shift = now / self.half_life_s
        return [(self.ids[i], float(np.exp2(self.log_scores[i] - shift))) for i in self._ranked_slots(n, exclude)]

    def _ranked_slots(self, n: int, exclude: Collection[str]) -> list[int]:
        """Slots of the ``n`` best-scored items not in ``exclude``, best first."""
        size = len(self.ids)
        scores, ids = self.log_scores[:size], self.ids
        if n + len(exclude) <= HOT and size > HOT:
            # Among the hot slots only: they hold the best HOT items (every counted item, until the first trim).
            hot = np.sort(np.fromiter(self._hot, dtype=np.int64, count=len(self._hot)))  # ties: by slot, as below
            best = hot[np.argsort(-scores[hot], kind="stable")]
            out = [i for i in best[np.isfinite(scores[best])].tolist() if ids[i] not in exclude]
            return out[:n]
        # Look at the best 2n first and widen only if too many of them are excluded: a
        # user's seen items (up to hundreds) rarely all sit at the top.
        want = min(size, 2 * n)
        while want:
            idx = np.argpartition(-scores, want - 1)[:want] if want < size else np.arange(size)
            idx = idx[np.argsort(-scores[idx], kind="stable")]
            out = []
            for i in idx[np.isfinite(scores[idx])].tolist():
                if ids[i] not in exclude:
                    out.append(i)
                    if len(out) == n:
                        return out
            if want >= min(size, n + len(exclude)):
                return out
            want = min(size, n + len(exclude), 4 * want)
        return []

    def _slot(self, item_id: str) -> int:
        slot = self.slots.get(item_id)
        if slot is None:
            slot = self.slots[item_id] = len(self.ids)
            self.ids.append(item_id)
            if slot == len(self.log_scores):
                self.log_scores = np.concatenate([self.log_scores, np.full(slot, -np.inf)])
                self.first_ts = np.concatenate([self.first_ts, np.full(slot, np.inf)])
                self.counts = np.concatenate([self.counts, np.zeros(slot, dtype=np.int64)])
        return slot
