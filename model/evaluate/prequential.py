"""Prequential evaluation: for each event in time order, first recommend, score, then observe.

Every event is a test before it is a lesson: each system is asked for the
user's top ``k`` as of just before the event (:meth:`System.recommend`), the
item the user actually took is looked up in that list, and only then is the
event fed in (:meth:`System.observe`). Nothing from the future leaks into a
list, every event is used for both testing and training, and the numbers
describe a system that keeps learning, as a streaming one does.

With one relevant item per list, the ranking metrics reduce to functions of
its rank ``r`` (1-based, 0 when it is not in the top ``k``):

- HR@k (hit rate): 1 if ``r > 0``;
- NDCG@k: ``1 / log2(r + 1)`` (the ideal DCG is 1);
- MRR: ``1 / r``, 0 for a miss.

Beside accuracy a report holds catalogue coverage (distinct items ever
recommended / catalogue size), the metrics on cold-start events alone (their
item had fewer than :data:`COLD_INTERACTIONS` earlier interactions), new-item
coverage (the share of items shown to someone within :data:`NEW_ITEM_WINDOW`
events of their first interaction), the wall time of each ``recommend`` +
``learn`` pair (its percentiles, and the events per second one system
would sustain alone), and HR@k over time in windows of events.

Examples
--------
>>> from model.evaluate.baselines import DecayedPopular, MostPopular
>>> from model.schema import Event
>>> items = ["a", "a", "a", "b", "b", "b", "b", "b"]   # a was the hit, then b is
>>> events = [Event(f"e{i}", f"u{i}", item, "view", 1.7e9 + 3600 * i, "home") for i, item in enumerate(items)]
>>> report = prequential(events, [MostPopular(), DecayedPopular(half_life_s=3600.0)], k=1)
>>> print(report.table(latency=False))
system        HR@1  NDCG@1     MRR  coverage  cold HR  new cov
popular      0.375   0.375   0.375     1.000    0.375    1.000
decayed      0.750   0.750   0.750     1.000    0.750    1.000
best baseline: decayed
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Collection, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from model.evaluate.baselines import System
from model.recommender import waves
from model.schema import Event

#: Latency histogram bins in the report: log-spaced from 0.1 µs to 10 s (outliers land in the end bins).
LATENCY_BINS_US = np.logspace(-1, 7, 81)
#: An event is a cold-start one when its item had fewer earlier interactions than this.
COLD_INTERACTIONS = 5
#: New-item coverage: the share of items shown to someone within this many events of their first interaction.
NEW_ITEM_WINDOW = 1000


def ranking_metrics(ranks: Sequence[int] | np.ndarray) -> dict[str, float]:
    """HR, NDCG and MRR of lists with one relevant item each, given its 1-based rank (0: missed).

    Examples
    --------
    >>> ranking_metrics([1, 3, 0, 0])
    {'hit_rate': 0.5, 'ndcg': 0.375, 'mrr': 0.3333333333333333}
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if not len(ranks):
        return {"hit_rate": 0.0, "ndcg": 0.0, "mrr": 0.0}
    hit = ranks > 0
    safe = np.where(hit, ranks, 1.0)
    return {
        "hit_rate": float(hit.mean()),
        "ndcg": float(np.where(hit, 1.0 / np.log2(safe + 1.0), 0.0).mean()),
        "mrr": float(np.where(hit, 1.0 / safe, 0.0).mean()),
    }


def rank_of(item_id: str, recommended: Sequence[str]) -> int:
    """The 1-based rank of ``item_id`` in ``recommended``, 0 when it is absent.

    >>> rank_of("b", ["a", "b", "c"]), rank_of("z", ["a", "b", "c"])
    (2, 0)
    """
    try:
        return recommended.index(item_id) + 1
    except ValueError:
        return 0


@dataclasses.dataclass
class SystemResult:
    """What one system did over a replay.

    Attributes
    ----------
    name
        The system's name.
    ranks
        Per scored event, the rank of the item taken in the list (0: missed).
    positions
        Per scored event, its 0-based position in the replayed stream.
    latency_ns
        Per replayed event (scored or not), nanoseconds of ``recommend`` + ``observe``.
    recommended
        Distinct items recommended on scored events.
    list_lengths
        Per scored event, how many items the list held (a system may return fewer than ``k``).
    cold
        Per scored event, whether its item had fewer than :data:`COLD_INTERACTIONS` earlier interactions.
    new_item_coverage
        Share of the items that appeared in the stream that were recommended to someone no later
        than :data:`NEW_ITEM_WINDOW` events after their first interaction (NaN: not measured).
    """

    name: str
    ranks: np.ndarray
    positions: np.ndarray
    latency_ns: np.ndarray
    recommended: set[str]
    list_lengths: np.ndarray
    cold: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    new_item_coverage: float = math.nan

    @property
    def metrics(self) -> dict[str, float]:
        return ranking_metrics(self.ranks)

    @property
    def cold_metrics(self) -> dict[str, float]:
        """HR, NDCG and MRR on the cold-start events only (their items had little history)."""
        return ranking_metrics(self.ranks[self.cold] if len(self.cold) == len(self.ranks) else [])

    def latency_us(self, percentile: float) -> float:
        return float(np.percentile(self.latency_ns, percentile) / 1e3) if len(self.latency_ns) else math.nan

    @property
    def events_per_s(self) -> float:
        """Events per second this system alone sustains: events / total time in recommend + observe."""
        total = self.latency_ns.sum()
        return float(len(self.latency_ns) / (total / 1e9)) if total else math.nan

    def coverage(self, catalogue_size: int) -> float:
        return len(self.recommended) / catalogue_size if catalogue_size else math.nan

    def hit_rate_windows(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """HR over consecutive windows of ``window`` scored events.

        The events left over at the end join the last window rather than
        make a tiny one of their own, whose HR would be mostly noise.

        Returns
        -------
        ends, hit_rates
            The stream position of each window's last event, and the window's HR.
        """
        hits = (self.ranks > 0).astype(np.float64)
        if not len(hits):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        starts = np.arange(0, max(len(hits) // window, 1) * window, window)
        ends = np.append(starts[1:], len(hits))
        return self.positions[ends - 1], np.add.reduceat(hits, starts) / (ends - starts)

    def to_dict(self, catalogue_size: int, window: int) -> dict:
        ends, rates = self.hit_rate_windows(window)
        counts, _ = np.histogram(np.clip(self.latency_ns / 1e3, LATENCY_BINS_US[0], LATENCY_BINS_US[-1]),
                                 bins=LATENCY_BINS_US)
        return {
            "name": self.name,
            "scored_events": len(self.ranks),
            "hits": int((self.ranks > 0).sum()),
            **self.metrics,
            "coverage": self.coverage(catalogue_size),
            "cold_events": int(self.cold.sum()) if len(self.cold) == len(self.ranks) else 0,
            "cold": self.cold_metrics,
            "new_item_coverage": self.new_item_coverage,
            "distinct_recommended": len(self.recommended),
            "mean_list_length": float(self.list_lengths.mean()) if len(self.list_lengths) else 0.0,
            "short_lists": int((self.list_lengths < self.list_lengths.max()).sum()) if len(self.list_lengths) else 0,
            "latency_us": {
                "p50": self.latency_us(50), "p90": self.latency_us(90), "p99": self.latency_us(99),
                "p999": self.latency_us(99.9), "max": self.latency_us(100),
                "mean": float(self.latency_ns.mean() / 1e3) if len(self.latency_ns) else math.nan,
                "histogram_bins_us": LATENCY_BINS_US.tolist(), "histogram_counts": counts.tolist(),
            },
            "events_per_s": self.events_per_s,
            "hit_rate_over_time": {"window": window, "end_position": ends.tolist(), "hit_rate": rates.tolist()},
        }


@dataclasses.dataclass
class Report:
    """The result of :func:`prequential`: one :class:`SystemResult` per system, and the protocol used."""

    k: int
    systems: list[SystemResult]
    replayed: int
    warmup: int
    score_types: tuple[str, ...] | None
    catalogue_size: int
    window: int
    wall_s: float

    def __getitem__(self, name: str) -> SystemResult:
        for result in self.systems:
            if result.name == name:
                return result
        raise KeyError(name)

    def best_baseline(self, full: str = "full") -> SystemResult | None:
        """The system other than ``full`` with the highest HR@k."""
        others = [r for r in self.systems if r.name != full]
        return max(others, key=lambda r: r.metrics["hit_rate"], default=None)

    def lift(self, full: str = "full") -> dict[str, float] | None:
        """``full``'s relative gain over the best baseline, in %, per metric (None without both)."""
        base = self.best_baseline(full)
        names = {r.name for r in self.systems}
        if base is None or full not in names:
            return None
        ours, theirs = self[full].metrics, base.metrics
        return {m: (100.0 * (ours[m] / theirs[m] - 1.0) if theirs[m] else math.inf) for m in ours}

    def table(self, latency: bool = True, full: str = "full") -> str:
        """A text table, one row per system, then the best baseline and ``full``'s lift over it."""
        width = max([10, *(len(r.name) + 1 for r in self.systems)])
        head = f"{'system':<{width}} {f'HR@{self.k}':>7} {f'NDCG@{self.k}':>7} {'MRR':>7} {'coverage':>9} " \
               f"{'cold HR':>8} {'new cov':>8}"
        if latency:
            head += f" {'p50 µs':>8} {'p99 µs':>8} {'events/s':>9}"
        lines = [head]
        for r in self.systems:
            m = r.metrics
            line = f"{r.name:<{width}} {m['hit_rate']:>7.3f} {m['ndcg']:>7.3f} {m['mrr']:>7.3f} " \
                   f"{r.coverage(self.catalogue_size):>9.3f} {r.cold_metrics['hit_rate']:>8.3f} " \
                   f"{r.new_item_coverage:>8.3f}"
            if latency:
                line += f" {r.latency_us(50):>8.0f} {r.latency_us(99):>8.0f} {r.events_per_s:>9,.0f}"
            lines.append(line)
        base = self.best_baseline(full)
        if base is not None:
            lines.append(f"best baseline: {base.name}")
        lift = self.lift(full)
        if lift is not None:
            lines.append(f"{full} vs {base.name}: " + ", ".join(
                f"{label} {lift[m]:+.1f} %" for m, label in
                (("hit_rate", f"HR@{self.k}"), ("ndcg", f"NDCG@{self.k}"), ("mrr", "MRR"))))
        return "\n".join(lines)

    def to_dict(self, full: str = "full") -> dict:
        base = self.best_baseline(full)
        return {
            "protocol": {
                "k": self.k, "replayed_events": self.replayed, "warmup_events": self.warmup,
                "score_types": None if self.score_types is None else list(self.score_types),
                "scored_events": len(self.systems[0].ranks) if self.systems else 0,
                "catalogue_size": self.catalogue_size, "window": self.window,
                "latency": "wall time of recommend + observe per replayed event",
            },
            "wall_s": self.wall_s,
            "systems": [r.to_dict(self.catalogue_size, self.window) for r in self.systems],
            "best_baseline": None if base is None else base.name,
            "lift_pct": self.lift(full),
        }


def prequential(events: Iterable[Event], systems: Sequence[System], *, k: int = 10, limit: int | None = None,
                 warmup: int = 0, score_types: Collection[str] | None = None, catalogue_size: int | None = None,
                 window: int = 2000, batch: int = 1, progress: bool = False) -> Report:
    """Replay ``events`` in the order given through every system: recommend, score, observe.

    Parameters
    ----------
    events
        The stream, in time order.
    systems
        The systems to compare; each sees every event.
    k
        List length.
    limit
        Replay at most this many events (all by default).
    warmup
        The first ``warmup`` events are observed but not scored.
    score_types
        Score only events of these types (all by default); the others are still observed.
    catalogue_size
        Denominator of coverage; by default the distinct items replayed or recommended.
    window
        Scored events per point of the HR-over-time series.
    batch
        Events taken together, as a worker takes a micro-batch: split into waves in which
        each user appears once, every list of a wave computed (in one call, for systems
        with ``recommend_many``) before the wave's events are observed. 1: event by event.
    progress
        Show a progress bar.

    Returns
    -------
    Report
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if window < 1:
        raise ValueError("window must be at least 1")
    if limit is not None:
        events = events[:limit] if isinstance(events, Sequence) else itertools.islice(events, limit)
    wanted = None if score_types is None else frozenset(score_types)
    n = len(systems)
    ranks: list[list[int]] = [[] for _ in range(n)]
    lengths: list[list[int]] = [[] for _ in range(n)]
    latency: list[list[int]] = [[] for _ in range(n)]
    recommended: list[set[str]] = [set() for _ in range(n)]
    positions: list[int] = []
    cold: list[bool] = []
    interactions: dict[str, int] = {}  # earlier events per item; first position per item below
    arrival: dict[str, int] = {}
    first_shown: list[dict[str, int]] = [{} for _ in range(n)]
    items_seen: set[str] = set()
    clock = time.perf_counter_ns
    started = time.perf_counter()
    total = len(events) if isinstance(events, Sequence) else None
    position = -1
    with tqdm(total=total, unit="event", disable=not progress, mininterval=0.5, smoothing=0.05) as bar:
        for chunk in _windows(events, batch):
            first = position + 1
            for event in chunk:
                position += 1
                items_seen.add(event.item_id)
                arrival.setdefault(event.item_id, position)
                if position >= warmup and (wanted is None or event.type in wanted):
                    positions.append(position)
                    cold.append(interactions.get(event.item_id, 0) < COLD_INTERACTIONS)
                interactions[event.item_id] = interactions.get(event.item_id, 0) + 1
            for s, system in enumerate(systems):
                lists: list[list[str]] = [[] for _ in chunk]
                spent = np.zeros(len(chunk), dtype=np.int64)
                for wave in waves([event.user_id for event in chunk]):
                    start = clock()
                    answers = recommend_all(system, [chunk[n] for n in wave], k)
                    observe_all(system, [chunk[n] for n in wave])
                    spent[wave] = (clock() - start) // len(wave)
                    for n, recs in zip(wave, answers):
                        lists[n] = recs[:k]
                latency[s].extend(spent.tolist())
                for n, (event, recs) in enumerate(zip(chunk, lists)):
                    at = first + n
                    for item in recs:
                        first_shown[s].setdefault(item, at)
                    if at >= warmup and (wanted is None or event.type in wanted):
                        ranks[s].append(rank_of(event.item_id, recs))
                        lengths[s].append(len(recs))
                        recommended[s].update(recs)
            bar.update(len(chunk))
    wall = time.perf_counter() - started
    where = np.asarray(positions, dtype=np.int64)
    results = [SystemResult(system.name, np.asarray(ranks[s], dtype=np.int32), where,
                            np.asarray(latency[s], dtype=np.int64), recommended[s],
                            np.asarray(lengths[s], dtype=np.int32), np.asarray(cold, dtype=bool),
                            _new_item_coverage(arrival, first_shown[s]))
               for s, system in enumerate(systems)]
    return Report(k=k, systems=results, replayed=position + 1, warmup=warmup,
                  score_types=None if wanted is None else tuple(sorted(wanted)),
                  catalogue_size=catalogue_size if catalogue_size is not None
                  else len(items_seen.union(*recommended)),
                  window=window, wall_s=wall)


def _new_item_coverage(arrival: dict[str, int], first_shown: dict[str, int]) -> float:
    """Share of items shown no later than :data:`NEW_ITEM_WINDOW` events after they first appeared."""
    if not arrival:
        return math.nan
    return sum(first_shown.get(item, math.inf) <= at + NEW_ITEM_WINDOW for item, at in arrival.items()) / len(arrival)


def recommend_all(system: System, events: list[Event], k: int) -> list[list[str]]:
    """Each event's list before it, for events of distinct users: in one batch if the system takes batches."""
    many = getattr(system, "recommend_many", None)
    return many(events, k) if many is not None else [system.recommend(event, k) for event in events]


def observe_all(system: System, events: list[Event]) -> None:
    """Feed ``events`` of distinct users to ``system`` in order: in one batch if the system takes batches."""
    many = getattr(system, "observe_many", None)
    if many is not None:
        many(events)
    else:
        for event in events:
            system.observe(event)


def _windows(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    iterator = iter(events)
    while window := list(itertools.islice(iterator, max(size, 1))):
        yield window
