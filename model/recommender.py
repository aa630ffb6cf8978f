"""The recommender core: ``observe`` an event into a user's state, ``recommend`` top-k with reasons.

The Faust agents and the in-process replay call exactly these methods; they
differ only in where the state lives (Redis or a dict) and in who learns the
ranker's feedback (a trainer agent, or the replay itself).

``recommend`` gathers candidates from four sources — the items nearest to each
of the user's interest vectors (content), decayed co-visitation from the
user's last items, counted and normalised as item-kNN does ("people who took X
also took Y"), decayed co-purchase ("often bought with X"), and decayed
popularity overall, in the scene and among users at the same stage (trending)
— computes features for every candidate at once, among them the score of the
item space learned from what users take next (:mod:`model.representations`,
a trainer's snapshot), and ranks them with an online logistic regression
(:class:`model.ranker.OnlineRanker`). Each item's reason comes from the
feature group that contributed most to its score.
The list is remembered in the user's state; when the user's next event arrives,
``observe`` turns it into a labelled list (the item taken first, then the
candidates it should have beaten) and a next-item example (the user's recent
items, the item taken) before folding the event in.

Examples
--------
>>> import numpy as np
>>> from model.config import RecommenderConfig
>>> from model.schema import Event, Item
>>> rec = Recommender(RecommenderConfig(half_lives_s=(600.0, 86400.0), half_life_weights=(0.6, 0.4)), dim=2)
>>> rec.add_items([Item("tea1", "Green Tea", "tea"), Item("tea2", "Oolong Tea", "tea"),
...                Item("cof1", "Espresso Beans", "coffee")],
...               np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]], dtype=np.float32))
>>> user = rec.new_state("u1")
>>> rec.recommend(user, k=2, now=0.0)   # no history, nothing popular yet
[]
>>> _ = rec.observe(user, Event("e1", "u1", "tea1", "click", 1.7e9, "home"))
>>> top = rec.recommend(user, k=1)
>>> top[0].item_id, top[0].reason
('tea2', 'similar to “Green Tea” that you clicked')
>>> feedback = rec.observe(user, Event("e2", "u1", "tea2", "view", 1.7e9 + 60, "home")).feedback
>>> feedback.hit, len(feedback.y)   # tea2 was shown and taken; nothing else was shown
(True, 0)
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import zlib
from collections.abc import Sequence

import numpy as np

from model.candidates import Candidates, PairScores, top_per_group
from model.config import RecommenderConfig
from model.cooccurrence import Cooccurrence, PairCount
from model.features import REASONS, features_for, initial_ranker
from model.index import ItemIndex
from model.interests import MIN_RECENT, Impressions, InterestVector, UserState
from model.popularity import DecayedPopularity
from model.ranker import OnlineRanker
from model.reasons import reason_for
from model.representations import ItemSpace
from model.schema import Event, Item, Recommended
from model.threads import warn_if_blas_threaded

BUNDLE_TYPES = ("cart", "purchase")
#: Normalised co-visitation scores (C / n_s^0.5 n_j^0.4) run about ten times smaller than raw
#: counts: scaled back before the log, so the prior weights keep their balance with the cosines.
COVISIT_SCALE = 10.0


@dataclasses.dataclass
class Feedback:
    """Labelled impressions from one event: what the ranker learns."""

    #: Feature rows of one list: the item taken first (``y`` 1), then the candidates it should beat (0).
    X: np.ndarray
    y: np.ndarray
    #: Whether the item taken was in the list shown (what online HR@k counts).
    hit: bool
    model_version: int


@dataclasses.dataclass
class Observation:
    """What observing one event produced."""

    #: The list shown before the event, labelled by it (None: nothing was shown).
    feedback: Feedback | None
    #: ``(item_id, log2 increment)`` the event adds to the shared decayed popularity
    #: (None: its item is not in the catalogue, so it is not counted).
    popularity: tuple[str, float] | None = None
    #: The event's increments to the shared co-visitation and co-purchase counts.
    pairs: list[PairCount] = dataclasses.field(default_factory=list)
    #: The segments whose popularity ``popularity`` also adds to (its scene, its user's stage).
    segments: list[str] = dataclasses.field(default_factory=list)
    #: ``(the user's recent items, the latest first; the item taken)``: an example for the
    #: learned representations (None: not counted, or no context yet).
    sequence: tuple[list[str], str] | None = None


class Recommender:
    """Candidate sources, features and an online ranker over users' decayed interests.

    Parameters
    ----------
    config
        The knobs.
    dim
        Item vector size (384 for all-MiniLM-L6-v2).
    ranker
        A ranker to start from (a snapshot); by default one with prior weights.
    """

    def __init__(self, config: RecommenderConfig, dim: int, ranker: OnlineRanker | None = None):
        warn_if_blas_threaded()
        self.config = config
        self.dim = dim
        self.index = ItemIndex(dim, config.ann_min_items, config.ann_nprobe)
        self.popularity = DecayedPopularity(config.popularity_half_life_s)
        #: Decayed popularity within segments of the traffic: per scene (``scene:home``) and per
        #: user stage (``stage:8``: what users with 8 to 10 events behind them take).
        self.segment_popularity: dict[str, DecayedPopularity] = {}
        #: The newest event time observed: "now" for a request that gives none and a user with no events.
        self.clock = -np.inf
        #: Items kept in each user's ``recent``: as many as the longest window that reads them.
        self.max_recent = max(MIN_RECENT, config.covisit_window, config.covisit_seeds, config.learned_window)
        self.covisit = Cooccurrence(config.covisit_half_life_s, config.max_neighbours)
        self.bundles = Cooccurrence(config.bundle_half_life_s, config.max_neighbours)
        declared = features_for(config)
        self.features = [f.name for f in declared]
        self.ranker = ranker or initial_ranker(config)
        self._reason_of_feature = np.array([REASONS.index(f.reason) for f in declared])
        #: Items with too little evidence yet for the ranker to show them, oldest first (bounded),
        #: and an index of their vectors: what the exploration slot chooses from.
        self.new_items: dict[str, None] = {}
        self.new_index = ItemIndex(dim, config.ann_min_items, config.ann_nprobe)
        #: Per popularity (by id): (when ranked: refreshes due, index generation and size; ranked up to;
        #: the ranking as index rows, -1 for an id not in the catalogue).
        self._rankings: dict[int, tuple[tuple[int, int, int], int, np.ndarray]] = {}
        #: The learned representations served (None: off), and index rows in them: as context (p),
        #: as the next item (q), its bias (b), embedded when a list first reads them in a version.
        self.item_space = ItemSpace.initial(dim, config) if config.learned_dim else None
        self._learned_p, self._learned_q, self._learned_b = _no_rows(config.learned_dim)
        #: Per row, the item space version its p, q, b were embedded in (-1: not yet, or its text changed).
        self._learned_version = np.full(0, -1, dtype=np.int64)

    def add_items(self, items: list[Item], vectors: np.ndarray) -> None:
        """Put items (with their text vectors) in the catalogue; those the counts have not met yet are new."""
        rows = self.index.add(items, vectors)
        for item, row in zip(items, rows):
            self.popularity.bind(item.item_id, row)
        if self.item_space is not None:
            self._stale(np.asarray(rows, dtype=np.int64))
        # Only the newest max_new_items can stay new: a catalogue loaded at once keeps its last ones.
        new = [n for n, item in enumerate(items) if self.is_new(item.item_id)][-self.config.max_new_items:]
        for n in new:
            self.new_items.pop(items[n].item_id, None)
            self.new_items[items[n].item_id] = None
        if new:
            self.new_index.add([items[n] for n in new], self.index.matrix[[rows[n] for n in new]])
        while len(self.new_items) > self.config.max_new_items:
            self._not_new(next(iter(self.new_items)))

    def set_item_space(self, space: ItemSpace) -> None:
        """Serve ``space`` (a trainer's snapshot) from the next list on.

        Swapping costs nothing per item: each row is embedded in the new space when a list
        first reads it (a million-item catalogue is never embedded whole). Nothing about
        users needs re-basing either: their context is read from their recent items at each
        list, so it is always in the space being served.
        """
        if space.dim != self._learned_p.shape[1]:  # another size: every row is embedded afresh
            self._learned_p, self._learned_q, self._learned_b = _no_rows(space.dim)
            self._learned_version = np.full(0, -1, dtype=np.int64)
            self._stale(np.arange(len(self.index.ids)))
        self.item_space = space

    def _stale(self, rows: np.ndarray) -> None:
        """These rows' vectors changed (or are new): embed them again when next read."""
        n = len(self.index.ids)
        if len(self._learned_b) < n:
            size = max(n, 2 * len(self._learned_b))
            self._learned_p, self._learned_q = (np.concatenate([a, np.zeros((size - len(a), a.shape[1]), a.dtype)])
                                                for a in (self._learned_p, self._learned_q))
            self._learned_b = np.concatenate([self._learned_b, np.zeros(size - len(self._learned_b), np.float32)])
            self._learned_version = np.concatenate([self._learned_version,
                                                    np.full(size - len(self._learned_version), -1, np.int64)])
        self._learned_version[rows] = -1

    def _embedded(self, rows: np.ndarray) -> None:
        """Make sure ``rows`` are embedded in the item space served (once per row and version)."""
        assert self.item_space is not None
        version = self.item_space.version
        todo = np.unique(rows[self._learned_version[rows] != version])
        if len(todo):
            p, q, b = self.item_space.embed([self.index.ids[r] for r in todo.tolist()], self.index.matrix[todo])
            self._learned_p[todo], self._learned_q[todo], self._learned_b[todo] = p, q, b
            self._learned_version[todo] = version

    def _not_new(self, item_id: str) -> None:
        self.new_items.pop(item_id, None)
        self.new_index.remove([item_id])

    def new_state(self, user_id: str) -> UserState:
        return UserState(user_id, InterestVector(self.dim, self.config.half_lives_s))

    def weight(self, event: Event) -> float:
        return float(self.config.type_weights[event.type])

    def remove_items(self, item_ids: list[str]) -> list[str]:
        """Delete items from the catalogue: never a candidate or a reason again; returns those that were here.

        Their co-occurrence rows go too (memory stays bounded by the live catalogue);
        neighbour entries pointing at them are skipped, as for any item not in the index.
        """
        rows = [self.index.rows[i] for i in item_ids if i in self.index]
        removed = self.index.remove(item_ids)
        for item_id, row in zip(removed, rows):
            self._not_new(item_id)
            self.covisit.remove(row)
            self.bundles.remove(row)
            for pop in (self.popularity, *self.segment_popularity.values()):
                pop.unbind(row)
        return removed

    def contributes(self, state: UserState, event: Event) -> bool:
        """Whether ``event`` adds to the global counts (popularity, co-occurrence), which one user must not own.

        Catalogue items only; not a repeat of an item the user took within
        ``recount_after_s``; and within the user's count budget (a burst, refilled with
        their event time: :meth:`model.interests.UserState.spend_count_budget`).
        """
        config = self.config
        if not self.in_catalogue(event.item_id):
            return False
        last = state.seen.get(event.item_id)
        if last is not None and abs(event.ts - last) < config.recount_after_s:
            return False
        return state.spend_count_budget(event.ts, config.count_burst, config.count_rate_per_s)

    def in_catalogue(self, item_id: str) -> bool:
        """Whether the global counts (popularity, co-occurrence) take ``item_id``: catalogue items only.

        Ids that never become items (junk, typos, a flood of random ids) must not grow
        memory, which stays bounded by the catalogue.
        """
        return item_id in self.index

    # --- learning from events
    def observe(self, state: UserState, event: Event, count: bool = True) -> Observation | None:
        """Label the list last shown to the user, then fold ``event`` into their state and the global counts.

        Returns the labelled impressions and the event's increment to the shared
        popularity, or None for an event whose ``event_id`` the user's state has seen
        recently (a client's retry): applying it again would count the same action
        twice. With ``count=False`` this process's global counts (popularity,
        co-visitation, bundles) are left alone, because the caller knows they already
        hold this event (a batch retried after its state write failed); the increment
        is returned all the same, for a shared store that did not take it.
        """
        return self.observe_many([(state, event, count)])[0]

    def observe_many(self, observed: Sequence[tuple[UserState, Event, bool]]) -> list[Observation | None]:
        """:meth:`observe` for the events of a wave, ``(state, event, count)`` of distinct users, in order.

        The lists are all labelled first, so the labels that need a taken item's features
        recomputed get them in one batch (one per event cost a worker 14 % of its time:
        bench/README.md); those features are then read as of the wave's start, before its
        events are counted, rather than after the events before it in the wave.
        """
        fresh = []  # positions of the events not seen before
        for n, (state, event, _) in enumerate(observed):
            if not state.is_duplicate(event.event_id):
                state.remember_event(event.event_id, event.fingerprint, self.config.dedupe_window)
                self.clock = max(self.clock, event.ts)
                fresh.append(n)
        labels = self._labels([observed[n][:2] for n in fresh])
        out: list[Observation | None] = [None] * len(observed)
        for n, feedback in zip(fresh, labels):
            out[n] = self._fold(*observed[n], feedback)
        return out

    def _fold(self, state: UserState, event: Event, count: bool, feedback: Feedback | None) -> Observation:
        """Fold ``event`` into the user's state and (``count``) the global counts; what it adds to the shared ones."""
        weight = self.weight(event)
        vector = self.index.vector(event.item_id)
        if vector is None:
            # The catalogue has not caught up with this item yet: hold the event and fold it
            # in with its own timestamp later (exact, since the interest sums are order-free).
            state.pending.append((event.item_id, event.ts, weight))
            del state.pending[: -self.config.max_pending]
        else:
            state.interests.add(vector, weight, event.ts)
            self._scene_vector(state, event.scene).add(vector, weight, event.ts)
        self.fold_pending(state)
        popularity, pairs, segments, sequence = None, [], [], None
        if self.contributes(state, event):
            popularity = (event.item_id, self.popularity.log_increment(weight, event.ts))
            pairs = self._pairs_of(state, event, weight)
            segments = [self._scene_segment(event.scene), stage_segment(state.n_events)]
            if self.item_space is not None and state.recent:
                sequence = ([item for item, _ in reversed(state.recent)][: self.config.learned_window], event.item_id)
            if count:
                self.add_pairs(pairs)
                self.popularity.observe(event.item_id, weight, event.ts)
                for segment in segments:
                    pop = self._segment_popularity(segment)
                    pop.observe(event.item_id, weight, event.ts)
                    pop.bind(event.item_id, self.index.rows[event.item_id])
                if event.item_id in self.new_items and not self.is_new(event.item_id):
                    self._not_new(event.item_id)
        if state.mark_seen(event.item_id, event.ts, event.type, self.config.max_seen, self.max_recent):
            state.seen_rows = None  # an older item was forgotten: rebuilt when next asked for
        elif state.seen_rows is not None and event.item_id in self.index:
            state.seen_rows[1].add(self.index.rows[event.item_id])
        state.n_events += 1
        return Observation(feedback, popularity, pairs, segments, sequence)

    def learn(self, feedback: Feedback | None) -> None:
        """Update the ranker from labelled impressions (what the trainer does with the feedback topic)."""
        if feedback is not None and len(feedback.y):
            self.ranker.learn_list(feedback.X, feedback.y)

    def fold_pending(self, state: UserState) -> None:
        """Fold in held events whose items the index now knows."""
        if not state.pending:
            return
        still = []
        for item_id, ts, weight in state.pending:
            vector = self.index.vector(item_id)
            if vector is None:
                still.append((item_id, ts, weight))
            else:
                state.interests.add(vector, weight, ts)
        state.pending = still

    def _labels(self, observed: list[tuple[UserState, Event]]) -> list[Feedback | None]:
        """The list last shown to each of these (distinct) users as a lesson, or None where none was shown.

        A lesson is the taken item's features first (``y`` 1), then those it should have beaten (0).
        A list, not its pairs: half the bytes on the feedback topic, and a ranker that
        learns lists (a listwise loss) gets them whole.

        Which negatives matters. The items shown are by construction the ones the current
        weights like best, so pitting a taken-but-not-shown item against them teaches the
        model that liked features are bad, and the weights collapse (measured on ml-100k:
        HR@10 0.107 → 0.050, pointwise and pairwise alike). So: on a hit, the taken item
        against the others shown (same distribution, the top); on a miss, against a uniform
        sample of that request's candidates; and if no source proposed the taken item at
        all, no pairs — a ranker cannot fix what candidate generation never offered.
        """
        empty = np.zeros((0, len(self.features)))
        # Per event: (the list shown, hit, the negatives), or None; and the taken item's features
        # (None: none to learn from), kept apart so the recomputed ones can be filled in after.
        lessons: list[tuple[Impressions, bool, np.ndarray] | None] = []
        positives: list[np.ndarray | None] = []
        # Taken items proposed but neither shown nor sampled: which lessons, and their features_of asks.
        recompute: list[int] = []
        asked: list[tuple[UserState, str, float, str]] = []
        for state, event in observed:
            shown, state.shown = state.shown, None
            positive = None
            if shown is None or (shown.features.shape[1] != len(self.features) and len(shown.features)):
                lessons.append(None)  # nothing shown, or shown with other features (stored before an upgrade)
            elif event.item_id in shown.item_ids:
                at = shown.item_ids.index(event.item_id)
                positive = shown.features[at]
                lessons.append((shown, True, np.delete(shown.features, at, axis=0)))
            elif event.item_id in shown.pool:
                in_sample = [n for n, i in enumerate(shown.sample_ids) if i == event.item_id]
                if in_sample:
                    positive = shown.sample_features[in_sample[0]]
                elif event.item_id in self.index:  # recomputed below; an item gone from the catalogue teaches nothing
                    recompute.append(len(lessons))
                    asked.append((state, event.item_id, shown.ts, shown.scene))
                lessons.append((shown, False, np.delete(shown.sample_features, in_sample, axis=0)))
            else:  # no source proposed it
                lessons.append((shown, False, empty))
            positives.append(positive)
        if asked:  # in one batch, as of now: the states have not seen these events yet
            for n, row in zip(recompute, self.features_of_many(asked)):
                positives[n] = row
        labels: list[Feedback | None] = []
        for lesson, positive in zip(lessons, positives):
            if lesson is None:
                labels.append(None)
                continue
            shown, hit, negatives = lesson
            if positive is None or not len(negatives):  # no positive, or nothing it should have beaten
                labels.append(Feedback(empty, np.zeros(0), hit, shown.model_version))
            else:
                X = np.vstack([positive[None, :], negatives]).astype(np.float64)
                y = np.zeros(len(X))
                y[0] = 1.0
                labels.append(Feedback(X, y, hit, shown.model_version))
        return labels

    def _pairs_of(self, state: UserState, event: Event, weight: float) -> list[PairCount]:
        """The pairs ``event`` counts, by item id (the store every worker shares knows no index rows)."""
        pairs = []
        item = event.item_id
        # Co-visitation: the user's last few items each lead to this one, nearer ones count more
        # (by position, not by clock time: positions mean the same in any shop's log).
        config = self.config
        for gap, (previous, _) in enumerate(reversed(state.recent[-config.covisit_window:]), start=1):
            if previous != item and self.in_catalogue(previous):
                value = self.covisit.log_increment(weight * config.covisit_gap_decay ** (gap - 1), event.ts)
                pairs.append(PairCount("covisit", previous, item, value))
                if config.covisit_symmetric:
                    pairs.append(PairCount("covisit", item, previous, value))
        if event.type in BUNDLE_TYPES:
            value = self.bundles.log_increment(weight, event.ts)
            for previous, kind in state.recent:
                if (kind in BUNDLE_TYPES and previous != item and self.in_catalogue(previous)
                        and event.ts - state.seen.get(previous, -np.inf) <= self.config.bundle_window_s):
                    pairs += [PairCount("bundle", previous, item, value), PairCount("bundle", item, previous, value)]
        return pairs

    def pair_counts(self, table: str) -> Cooccurrence:
        return self.covisit if table == "covisit" else self.bundles

    def add_pairs(self, pairs: list[PairCount]) -> None:
        """Fold increments into this process's counts (kept by index row: what the batched reads merge)."""
        rows = self.index.rows
        for table, item, neighbour, log in pairs:
            a, b = rows.get(item), rows.get(neighbour)
            if a is not None and b is not None:
                self.pair_counts(table).add_log(a, b, log)

    def seed_items(self, state: UserState) -> list[str]:
        """The items whose pair rows the user's next list reads (the latest first): what to fetch if shared."""
        covisit = [item for item, _ in state.recent[-self.config.covisit_seeds:]]
        return list(dict.fromkeys([*reversed(covisit), *self._bundle_items(state)]))

    def set_pair_row(self, table: str, item_id: str, neighbours: list[tuple[str, float]]) -> None:
        """Install the shared store's row of ``item_id`` (neighbour ids, forward-decayed log2 counts)."""
        row = self.index.rows.get(item_id)
        if row is None:
            return
        rows = self.index.rows
        kept = [(rows[b], v) for b, v in neighbours if b in rows]
        self.pair_counts(table).set_row(row, [r for r, _ in kept], [v for _, v in kept])

    def _scene_vector(self, state: UserState, scene: str) -> InterestVector:
        vector = state.scenes.get(scene)
        if vector is None:
            if len(state.scenes) >= self.config.max_scenes:  # bounded: forget the stalest scene
                del state.scenes[min(state.scenes, key=lambda s: state.scenes[s].ts)]
            vector = state.scenes[scene] = InterestVector(self.dim, self.config.half_lives_s[-1:])
        return vector

    def _scene_segment(self, scene: str) -> str:
        """Where the scene's popularity is counted: its own, or ``scene:other`` once there are many."""
        segment = f"scene:{scene}"
        bound = 4 * self.config.max_scenes + len(STAGES)
        if segment in self.segment_popularity or len(self.segment_popularity) < bound:
            return segment
        return "scene:other"  # scenes are a small vocabulary; a flood of new ones is junk

    def _segment_popularity(self, segment: str) -> DecayedPopularity:
        pop = self.segment_popularity.get(segment)
        if pop is None:
            pop = self.segment_popularity[segment] = DecayedPopularity(self.config.popularity_half_life_s)
        return pop

    def set_popularity(self, log_scores: list[tuple[str, float]], segment: str | None = None) -> None:
        """Overwrite popularity (overall, or in ``segment``) with sums read from the store every worker adds to."""
        pop = self.popularity if segment is None else self._segment_popularity(segment)
        pop.set_log(log_scores)
        if segment is not None:
            rows = self.index.rows
            for item_id, _ in log_scores:
                if item_id in rows:
                    pop.bind(item_id, rows[item_id])

    # --- recommending
    def recommend(self, state: UserState, k: int | None = None, now: float | None = None,
                  scene: str | None = None, record: bool = True) -> list[Recommended]:
        """The user's top ``k``, best first, each with a reason: :meth:`recommend_many` for one request."""
        return self.recommend_many([Request(state, now, scene or "home", k, record)])[0]

    def recommend_many(self, requests: list[Request]) -> list[list[Recommended]]:
        """Each request's top ``k``, best first, each with a reason; the whole batch at once.

        Requests must be of distinct users (a user's events are answered in order, one
        wave at a time: :func:`waves`). ``now`` defaults to the user's last event time;
        with ``record`` the list is remembered in the user's state as the impression
        their next event will label.
        """
        if not requests:
            return []
        batch = self._batch(requests)
        if not len(self.index):
            return [[] for _ in requests]
        candidates, pairs = self._candidates(batch)
        out: list[list[Recommended]] = [[] for _ in requests]
        if not len(candidates):
            return out
        X = self._features(batch, candidates, pairs)
        logits = self.ranker.score_many(X)
        bounds = candidates.bounds(len(requests))
        chosen = top_per_group(candidates.requests, logits, batch.k)
        chosen_bounds = np.searchsorted(candidates.requests[chosen], np.arange(len(requests) + 1))
        lists: list[tuple[int, np.ndarray, set[int]]] = []  # (request, its list as candidate positions, explored)
        if any(request.record for request in requests):  # what each list's impressions keep, made once
            pool, X32 = [self.index.ids[r] for r in candidates.rows.tolist()], X.astype(np.float32)
        for b, request in enumerate(requests):
            own = np.arange(bounds[b], bounds[b + 1])
            order = chosen[chosen_bounds[b]:chosen_bounds[b + 1]] - bounds[b]
            if not len(own):
                continue
            explored: set[int] = set()
            if batch.explores[b]:
                order = self._explore(request.state, float(batch.now[b]), candidates, own, order, int(batch.k[b]),
                                      explored)
            if request.record:
                request.state.shown = self._impressions(request.state, batch, b, own, order, pool, X32)
            lists.append((b, own[order], {int(own[p]) for p in explored}))
        explained = [entry for entry in lists if requests[entry[0]].explain]
        for (b, _, _), items in zip(explained, self._explain(batch, candidates, pairs, explained, logits, X)):
            out[b] = items
        ids = self.index.ids
        for b, picked, _ in lists:
            if not requests[b].explain:  # the items alone (a replay scores lists; it shows no one the reasons)
                out[b] = [Recommended(ids[r], float(logits[p]), "", "") for p, r in
                          zip(picked.tolist(), candidates.rows[picked].tolist())]
        return out

    def _batch(self, requests: list[Request]) -> Batch:
        config = self.config
        now = np.array([r.state.interests.ts if r.now is None else r.now for r in requests], dtype=np.float64)
        # A user with no events yet, asked for without a time: the newest event time seen (so
        # trending means trending now; time 0 would read every decayed score as infinite).
        now[~np.isfinite(now)] = self.clock if np.isfinite(self.clock) else 0.0
        scenes = [r.scene or "home" for r in requests]
        directions = np.stack([self._directions(r.state, scene) for r, scene in zip(requests, scenes)]) \
            if requests else np.zeros((0, 0, self.dim), np.float32)
        k = np.array([config.top_k if r.k is None else r.k for r in requests], dtype=np.int64)
        explores = [bool(config.explore_slots and self.new_items and not r.state.interests.empty
                         and _draw(r.state.user_id, float(now[b]), "explore-share") < config.explore_share)
                    for b, r in enumerate(requests)]
        n_rows = len(self.index.ids)
        excluded = [b * n_rows + np.fromiter(self._seen_rows(r.state), dtype=np.int64)
                    for b, r in enumerate(requests)] if config.exclude_seen else []
        excluded = np.sort(np.concatenate(excluded)) if excluded else np.zeros(0, dtype=np.int64)
        context = self._contexts(requests) if self.item_space is not None else None
        segments = [[f"scene:{scene}" for scene in scenes], [stage_segment(r.state.n_events) for r in requests]]
        return Batch(requests, now, scenes, directions, k, explores, excluded, context, segments)

    def _candidates(self, batch: Batch) -> tuple[Candidates, dict[str, PairScores]]:
        """Every source's candidates for every request, excluded items left out."""
        config, index, n = self.config, self.index, self.config.candidates_per_source
        n_rows = len(index.ids)
        proposals: list[tuple[np.ndarray, np.ndarray]] = []
        popular: list[tuple[np.ndarray, np.ndarray]] = []
        pairs = {"covisit": PairScores.empty(), "bundle": PairScores.empty()}
        if "content" in config.sources:
            proposals.append(self._content(batch, n))
        for source in ("covisit", "bundle"):
            if source in config.sources:
                pairs[source] = self._pair_scores(batch, source)
                proposals.append(self._best_pairs(batch, pairs[source], n_rows, n))
        if "popular" in config.sources or config.fill_with_popular:
            popular = self._popular(batch, n)
        new = self._new(batch) if any(batch.explores) else (np.zeros(0, int), np.zeros(0, int), np.zeros(0))
        return Candidates.union(proposals, popular, new, n_rows), pairs

    def _content(self, batch: Batch, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The items nearest to each user's blended interest and to their last item: two queries per user.

        Two, not one per half-life: the blend (weighted by ``half_life_weights``) and the
        last item carry the candidates, and the per-half-life cosines still rank them.
        """
        h = len(self.config.half_lives_s)
        weights = np.asarray(self.config.half_life_weights, dtype=np.float32)
        blended = np.einsum("h,bhd->bd", weights, batch.directions[:, :h])
        queries, owners = [], []
        for b, request in enumerate(batch.requests):
            if request.state.interests.empty:
                continue
            for vector in (blended[b], batch.directions[b, h]):
                norm = float(np.linalg.norm(vector))
                if norm > 0:
                    queries.append(vector / norm)
                    owners.append(b)
        if not queries:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        rows, _ = self.index.search(np.stack(queries), 2 * n)  # twice as many: seen items are dropped next
        asked_by = np.repeat(np.arange(len(queries)), rows.shape[1])
        owners = np.repeat(np.asarray(owners, dtype=np.int64), rows.shape[1])
        rows = rows.ravel()
        found = rows >= 0
        asked_by, owners, rows = asked_by[found], owners[found], rows[found]
        keep = self._not_excluded(batch, owners, rows)
        asked_by, owners, rows = asked_by[keep], owners[keep], rows[keep]
        rank = np.arange(len(rows), dtype=np.float64)  # search order: the best first within each query
        best = top_per_group(asked_by, -rank, n)  # n from each of a user's two queries (the union drops repeats)
        return owners[best], rows[best]

    def _contexts(self, requests: list[Request]) -> np.ndarray:
        """Each ``c_u``: the user's recent items in the learned space, the a-th latest weighted by ``w_a``."""
        assert self.item_space is not None
        rows, window = self.index.rows, self.config.learned_window
        recent = [[rows[item] for item, _ in reversed(r.state.recent[-window:]) if item in rows] for r in requests]
        out = np.zeros((len(requests), self.item_space.dim), dtype=np.float32)
        every = np.fromiter((row for mine in recent for row in mine), dtype=np.int64)
        if len(every):
            self._embedded(every)
        for b, mine in enumerate(recent):
            if mine:
                out[b] = (self.item_space.context_weights[: len(mine)] * self._learned_p[mine]).sum(axis=0)
        return out

    def _covisit_seeds(self, state: UserState) -> list[int]:
        """Rows of the user's last items, the latest first (each weighs 1 / (1 + its distance from the latest))."""
        rows = self.index.rows
        return [rows.get(item, -1) for item, _ in reversed(state.recent[-self.config.covisit_seeds:])]

    def _bundle_seeds(self, state: UserState) -> list[int]:
        rows = self.index.rows
        return [rows.get(item, -1) for item in self._bundle_items(state)]

    @staticmethod
    def _bundle_items(state: UserState) -> list[str]:
        return [item for item, kind in reversed(state.recent) if kind in BUNDLE_TYPES][:3]

    def _pair_scores(self, batch: Batch, table: str, only: list[int] | None = None) -> PairScores:
        """Every neighbour of every request's seeds in ``table``, decayed scores summed per (request, item).

        Seed number ``d`` (0: the latest) weighs ``covisit_seed_decay ** d`` in co-visitation,
        ``1 / (1 + d)`` in co-purchase. With ``only``, request ``b``'s sum is taken for the
        row ``only[b]`` alone (the same figure, without reading every other neighbour).
        """
        pair_counts = self.pair_counts(table)
        covisit = table == "covisit"
        seeds_of = self._covisit_seeds if covisit else self._bundle_seeds
        decay = self.config.covisit_seed_decay if covisit else None
        # One Python step per seed to fetch its arrays; everything after is one array operation per batch.
        owners, seeds, weights, rows, logs = [], [], [], [], []
        for b, request in enumerate(batch.requests):
            for distance, seed in enumerate(seeds_of(request.state)):
                if seed >= 0:
                    neighbour_rows, neighbour_logs = pair_counts.neighbour_arrays(seed) if only is None \
                        else pair_counts.neighbour_entry(seed, only[b])
                    if len(neighbour_rows):
                        owners.append(b)
                        seeds.append(seed)
                        weights.append(decay ** distance if decay is not None else 1.0 / (1 + distance))
                        rows.append(neighbour_rows)
                        logs.append(neighbour_logs)
        if not rows:
            return PairScores.empty()
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        owners = np.repeat(np.asarray(owners, dtype=np.int64), lengths)
        rows = np.concatenate(rows)
        scores = np.exp2(np.concatenate(logs) - batch.now[owners] / pair_counts.half_life_s) \
            * np.repeat(np.asarray(weights), lengths)
        seeds = np.repeat(np.asarray(seeds, dtype=np.int64), lengths)
        if covisit and (self.config.covisit_seed_exponent or self.config.covisit_candidate_exponent):
            # Item-kNN's normalisation, C[s, j] / (n_s^a n_j^b): a pair of two popular items says
            # less than the same count between rare ones (plain cosine, a = b = 0.5, over-penalises).
            scores = scores / (np.maximum(self.popularity.counts_at(seeds), 1.0) ** self.config.covisit_seed_exponent
                               * np.maximum(self.popularity.counts_at(rows), 1.0)
                               ** self.config.covisit_candidate_exponent)
        live = self.index.live[rows]  # an item that left the catalogue is nobody's neighbour any more
        return PairScores.merge(owners[live], rows[live], scores[live], seeds[live], len(self.index.ids))

    def _best_pairs(self, batch: Batch, pairs: PairScores, n_rows: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        owners, rows = pairs.keys // n_rows, pairs.keys % n_rows
        best = top_per_group(owners, pairs.totals, 2 * n)  # twice as many: seen items are dropped next
        owners, rows, totals = owners[best], rows[best], pairs.totals[best]
        keep = self._not_excluded(batch, owners, rows)
        best = top_per_group(owners[keep], totals[keep], n)
        return owners[keep][best], rows[keep][best]

    def _popular(self, batch: Batch, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Trending overall and in each request's segments: one ranking per segment for the whole batch."""
        out = []
        longest = max((len(r.state.seen) for r in batch.requests), default=0) if self.config.exclude_seen else 0
        rankings = [(self.popularity, np.arange(len(batch.requests)))]
        for of_requests in batch.segments:
            for segment in sorted(set(of_requests)):
                if segment in self.segment_popularity:
                    rankings.append((self.segment_popularity[segment],
                                     np.array([b for b, s in enumerate(of_requests) if s == segment])))
        for pop, owners in rankings:
            rows = self._ranked_rows(pop, n + min(longest, 4 * n))
            if not len(rows):
                continue
            all_owners, all_rows = np.repeat(owners, len(rows)), np.tile(rows, len(owners))
            keep = self._not_excluded(batch, all_owners, all_rows)
            rank = np.tile(np.arange(len(rows), dtype=np.float64), len(owners))[keep]
            best = top_per_group(all_owners[keep], -rank, n)
            out.append((all_owners[keep][best], all_rows[keep][best]))
        return out

    def _ranked_rows(self, pop: DecayedPopularity, n: int) -> np.ndarray:
        """The rows of the ``n`` most popular items (those in the catalogue), ranked every ``popular_refresh`` events.

        Events counted into ``pop``, that is. Ranking the catalogue per wave costs more than
        the list changes: trending moves slowly, and workers read the shared ranking from
        Redis once a second anyway.
        """
        # By count of events, not by call: the same events give the same rankings however the
        # requests were batched (the replay and the worker agree). The rows stand while no
        # item has been added or removed since.
        due = (pop.observed // self.config.popular_refresh, self.index.generation, len(self.index.ids))
        cached = self._rankings.get(id(pop))
        if cached is None or cached[1] < n or cached[0] != due:
            rows = self.index.rows
            ranked = np.array([rows.get(i, -1) for i in pop.top_ids(n)], dtype=np.int64)  # -1: not in the catalogue
            cached = self._rankings[id(pop)] = (due, n, ranked)
        top = cached[2][:n]
        return top[top >= 0]

    def _new(self, batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """New items nearest to each exploring user's last item (or long-term interest), with their cosines."""
        h = len(self.config.half_lives_s)
        owners = np.array([b for b, explores in enumerate(batch.explores) if explores], dtype=np.int64)
        queries = np.stack([batch.directions[b, h] if batch.directions[b, h].any() else batch.directions[b, h - 1]
                            for b in owners])
        n = self.config.new_items_per_request
        new_rows, cosines = self.new_index.search(queries, 2 * n)
        rows = np.array([self.index.rows.get(self.new_index.ids[r], -1) if r >= 0 else -1
                         for r in new_rows.ravel().tolist()], dtype=np.int64)
        owners, cosines = np.repeat(owners, new_rows.shape[1]), cosines.ravel().astype(np.float64)
        keep = rows >= 0
        keep[keep] = self._not_excluded(batch, owners[keep], rows[keep])
        best = top_per_group(owners[keep], cosines[keep], n)
        return owners[keep][best], rows[keep][best], cosines[keep][best]

    def _not_excluded(self, batch: Batch, owners: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Whether each (request, row) may be recommended: not an item the user already took."""
        if not self.config.exclude_seen or not len(rows):
            return np.ones(len(rows), dtype=bool)
        keys, excluded = owners * len(self.index.ids) + rows, batch.excluded
        if not len(excluded):
            return np.ones(len(rows), dtype=bool)
        at = np.minimum(np.searchsorted(excluded, keys), len(excluded) - 1)
        return excluded[at] != keys

    def _seen_rows(self, state: UserState) -> set[int]:
        """The index rows of the items ``state`` took, kept on the state while it lives (one build per state)."""
        if state.seen_rows is None or state.seen_rows[0] != self.index.generation:
            rows = self.index.rows
            state.seen_rows = (self.index.generation, {rows[i] for i in state.seen if i in rows})
        return state.seen_rows[1]

    def _features(self, batch: Batch, candidates: Candidates, pairs: dict[str, PairScores]) -> np.ndarray:
        """One row per candidate, columns in :func:`model.features.features_for` order."""
        rows, owners = candidates.rows, candidates.requests
        bounds = candidates.bounds(len(batch.requests))
        cos = np.zeros((len(rows), batch.directions.shape[1]), dtype=np.float32)
        vectors = self.index.matrix
        for b in range(len(batch.requests)):  # half-lives, last item, scene (0 where there is no evidence)
            lo, hi = bounds[b], bounds[b + 1]
            if hi > lo:
                cos[lo:hi] = vectors[rows[lo:hi]] @ batch.directions[b].T
        keys = candidates.keys(len(self.index.ids))
        covisit, _ = pairs["covisit"].lookup(keys)
        bundle, _ = pairs["bundle"].lookup(keys)
        now = batch.now[owners]
        popularity = self.popularity.scores_at(rows, now)
        in_segment = [np.zeros(len(rows)) for _ in batch.segments]  # in the scene, in the user's stage
        for scores, of_requests in zip(in_segment, batch.segments):
            for segment in set(of_requests):
                pop = self.segment_popularity.get(segment)
                if pop is not None:
                    mine = np.array([s == segment for s in of_requests])[owners]
                    scores[mine] = pop.scores_at(rows[mine], now[mine])
        first = self.popularity.first_seen_at(rows)
        age_days = np.where(np.isfinite(first), np.maximum(now - first, 0.0) / 86400.0, 0.0)
        scene_popularity, stage_popularity = (np.log1p(scores) for scores in in_segment)
        behind = np.array([r.state.n_events for r in batch.requests], dtype=np.float64)[owners]
        columns = [cos, np.log1p(COVISIT_SCALE * covisit), np.log1p(bundle), np.log1p(popularity), scene_popularity,
                   stage_popularity, stage_popularity / (1.0 + behind), np.log1p(age_days)]
        if batch.context is not None:
            self._embedded(rows)
            columns.append(np.einsum("nd,nd->n", self._learned_q[rows], batch.context[owners]) + self._learned_b[rows])
        return np.column_stack(columns)

    def _explore(self, state: UserState, now: float, candidates: Candidates, own: np.ndarray, order: np.ndarray,
                 k: int, explored: set[int]) -> np.ndarray:
        """Give the last ``explore_slots`` places of the list to new items, chosen by Thompson sampling.

        Cold start is a promise: a new item has no popularity or co-visitation yet, so
        the ranker would never show it, and it would never earn any. Each new candidate's
        value is drawn around its cosine to the user's last item, spread the wider the
        less evidence it has (``explore_noise / sqrt(1 + interactions)``); the best draws
        above ``explore_min_cos`` take the slots, so exposure goes to new items that
        plausibly fit, more to the uncertain ones, and never to mismatches.
        """
        shown = set(order.tolist())
        pool = [p for p in np.flatnonzero(np.isfinite(candidates.new_cosine[own])).tolist() if p not in shown]
        if not pool:
            return order
        rng = np.random.default_rng(zlib.crc32(f"explore:{state.user_id}:{now!r}".encode()))
        counts = self.popularity.counts_at(candidates.rows[own][pool])
        draws = candidates.new_cosine[own][pool] + rng.standard_normal(len(pool)) * (
            self.config.explore_noise / np.sqrt(1.0 + counts))
        picked = [pool[j] for j in np.argsort(-draws)[: self.config.explore_slots]
                  if draws[j] >= self.config.explore_min_cos]
        if not picked:
            return order
        keep = order[: k - len(picked)] if len(order) + len(picked) > k else order
        explored.update(picked)
        return np.concatenate([keep, np.array(picked, dtype=order.dtype)])

    def _impressions(self, state: UserState, batch: Batch, b: int, own: np.ndarray, order: np.ndarray,
                     pool: list[str], X: np.ndarray) -> Impressions:
        """What request ``b`` was shown (``order`` of its candidates ``own``), with features and a sample of the rest.

        ``pool`` and ``X`` are the batch's candidate ids and float32 features, made once for all its lists.
        """
        rest = np.ones(len(own), dtype=bool)
        rest[order] = False
        rest = np.flatnonzero(rest).tolist()
        # Seeded by user and time, so the in-process replay and the stream draw the same sample.
        now = float(batch.now[b])
        rng = random.Random(zlib.crc32(f"{state.user_id}:{now!r}".encode()))
        sample = rng.sample(rest, min(len(rest), self.config.negative_samples))
        ids = pool[own[0]:own[-1] + 1]
        return Impressions([ids[i] for i in order.tolist()], X[own[order]], batch.scenes[b], now,
                           self.ranker.version, [ids[i] for i in sample], X[own[sample]], ids)

    def features_of(self, state: UserState, item_id: str, now: float, scene: str) -> np.ndarray:
        """The feature row ``item_id`` would have had in ``state``'s list at ``now`` (for labelling a miss)."""
        return self.features_of_many([(state, item_id, now, scene)])[0]

    def features_of_many(self, asked: list[tuple[UserState, str, float, str]]) -> np.ndarray:
        """:meth:`features_of` for ``(state, item_id, now, scene)`` of distinct users, in one batch: a row each."""
        batch = self._batch([Request(state, now, scene, 1, False) for state, _, now, scene in asked])
        rows = np.array([self.index.rows[item_id] for _, item_id, _, _ in asked], dtype=np.int64)
        candidates = Candidates(np.arange(len(asked), dtype=np.int64), rows, np.zeros(len(asked), bool),
                                np.full(len(asked), np.nan))
        pairs = {table: self._pair_scores(batch, table, only=rows.tolist()) for table in ("covisit", "bundle")}
        return self._features(batch, candidates, pairs)

    def _directions(self, state: UserState, scene: str) -> np.ndarray:
        """The unit directions a candidate's cosines are taken to: each half-life, the last item, the scene."""
        units = state.interests.unit_vectors()
        last = self._last_vector(state)
        return np.vstack([units, np.zeros((1, self.dim), np.float32) if last is None else last[None, :],
                          self._shrunk_scene_unit(state, scene, units)[None, :]])

    def _last_vector(self, state: UserState) -> np.ndarray | None:
        for item_id, _ in reversed(state.recent):
            vector = self.index.vector(item_id)
            if vector is not None:
                return vector
        return None

    def _shrunk_scene_unit(self, state: UserState, scene: str, units: np.ndarray) -> np.ndarray:
        """The scene's direction, shrunk toward the user's longest-scale interest when evidence is thin."""
        overall = units[-1]
        sv = state.scenes.get(scene)
        if sv is None or sv.empty:
            return overall
        mass = float(sv.mass[0])
        blended = mass * sv.unit_vectors()[0] + self.config.scene_shrinkage * overall
        norm = np.linalg.norm(blended)
        return blended / norm if norm > 0 else blended

    # --- explaining
    def _explain(self, batch: Batch, candidates: Candidates, pairs: dict[str, PairScores],
                 lists: list[tuple[int, np.ndarray, set[int]]], logits: np.ndarray,
                 X: np.ndarray) -> list[list[Recommended]]:
        """Each list's items, each with the reason of the feature group that contributed most to its score.

        ``lists`` holds (request, the list as candidate positions, those put there to explore).
        The arrays are taken for every list of the batch at once; only the wording is per item.
        """
        if not lists:
            return []
        picked = np.concatenate([positions for _, positions, _ in lists])
        lengths = [len(positions) for _, positions, _ in lists]
        owners = np.repeat([b for b, _, _ in lists], lengths)
        by_group = np.zeros((len(picked), len(REASONS)))
        np.add.at(by_group.T, self._reason_of_feature, self.ranker.contributions(X[picked]).T)
        groups = np.argmax(by_group, axis=1)
        rows = candidates.rows[picked]
        similar = self._most_similar_recent(batch, [b for b, _, _ in lists], lengths, rows)
        keys = candidates.keys(len(self.index.ids))[picked]
        anchors = {source: pair.lookup(keys)[1] for source, pair in pairs.items()}
        new = self.popularity.counts_at(rows) < self.config.new_item_interactions
        ids, items = self.index.ids, self.index.items
        explored = set().union(*(chosen for _, _, chosen in lists))
        out: list[list[Recommended]] = [[] for _ in lists]
        at = np.repeat(np.arange(len(lists)), lengths)
        for n, (position, g, b) in enumerate(zip(picked.tolist(), groups.tolist(), owners.tolist())):
            kind = "new" if position in explored else REASONS[g]
            anchor = anchors[kind][n] if kind in anchors else -1
            near = similar[n]
            reason, source = reason_for(
                kind, batch.scenes[b], pair_title=items[ids[anchor]].title if anchor >= 0 else None,
                similar=None if near is None else (items[near[0]].title, near[1], near[2]),
                trending=bool(candidates.popular[position]), new=bool(new[n]),
                min_cosine=self.config.similar_reason_min_cos, ordered=not self.config.covisit_symmetric)
            out[at[n]].append(Recommended(ids[rows[n]], float(logits[position]), reason, source))
        return out

    def _most_similar_recent(self, batch: Batch, owners: list[int], lengths: list[int],
                             rows: np.ndarray) -> list[tuple[str, str, float] | None]:
        """For each listed item, what its user recently took that is most like it: (item, event type, cosine).

        ``rows`` holds the lists one after another, ``lengths[s]`` items for request
        ``owners[s]``. One batched product: each user's recent items against their list.
        """
        index = self.index
        recent = [[(i, kind) for i, kind in batch.requests[b].state.recent if i in index] for b in owners]
        width = max(map(len, recent))
        if not width:
            return [None] * len(rows)
        recent_rows = np.zeros((len(owners), width), dtype=np.int64)
        taken = np.zeros((len(owners), width), dtype=bool)
        for s, mine in enumerate(recent):
            recent_rows[s, :len(mine)] = [index.rows[i] for i, _ in mine]
            taken[s, :len(mine)] = True
        slot = np.repeat(np.arange(len(owners)), lengths)
        place = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        listed = np.zeros((len(owners), max(lengths), self.dim), dtype=np.float32)
        listed[slot, place] = index.matrix[rows]
        similarity = np.matmul(index.matrix[recent_rows], listed.transpose(0, 2, 1))  # (lists, recent, listed)
        similarity[~taken] = -np.inf
        best = np.argmax(similarity, axis=1)[slot, place]
        cosines = similarity[slot, best, place].tolist()
        return [(*recent[s][r], c) if recent[s] else None for s, r, c in zip(slot.tolist(), best.tolist(), cosines)]

    def is_new(self, item_id: str) -> bool:
        """Whether the item has had fewer than ``new_item_interactions`` counted interactions."""
        return self.popularity.count(item_id) < self.config.new_item_interactions


@dataclasses.dataclass
class Request:
    """One list to compute: for whom, as of when, where it is shown, how long, and whether to remember it."""

    state: UserState
    now: float | None = None
    scene: str = "home"
    k: int | None = None
    record: bool = True
    #: Say why each item is there (the stream does; a replay, which only scores the items, need not).
    explain: bool = True


@dataclasses.dataclass
class Batch:
    """A micro-batch of requests with what every source needs of them, as arrays."""

    requests: list[Request]
    now: np.ndarray
    scenes: list[str]
    #: (requests, half-lives + last item + scene, dim): the unit directions cosines are taken to.
    directions: np.ndarray
    k: np.ndarray
    #: Whether each request's list gets an exploration slot (its own seeded draw against ``explore_share``).
    explores: list[bool]
    #: ``request * rows + row`` of every item a request's user took: never recommended to them.
    excluded: np.ndarray
    #: (requests, learned dim): each user's context in the learned space (None: representations off).
    context: np.ndarray | None = None
    #: Each request's popularity segments: its scene's (``scene:home``...), then its user's stage's.
    segments: list[list[str]] = dataclasses.field(default_factory=list)


def waves(user_ids: list[str]) -> list[list[int]]:
    """Split a batch into waves in which each user appears once, keeping each user's events in order.

    A wave is recommended for at once; a user's second event goes to the next wave, so it
    sees their first.

    >>> waves(["a", "b", "a", "c", "a", "b"])
    [[0, 1, 3], [2, 5], [4]]
    """
    out: list[list[int]] = []
    seen: dict[str, int] = {}
    for n, user in enumerate(user_ids):
        wave = seen.get(user, -1) + 1
        seen[user] = wave
        if wave == len(out):
            out.append([])
        out[wave].append(n)
    return out


#: Lower bounds of the user-stage buckets (events behind the user), about √2 apart: a stage is a
#: position in a user's life, which means the same in any shop's log (unlike a span of time).
STAGES = (0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128, 181, 256, 362, 512)


def stage_segment(n_events: int) -> str:
    """The popularity segment of users with ``n_events`` events behind them.

    >>> stage_segment(0), stage_segment(9), stage_segment(10_000)
    ('stage:0', 'stage:8', 'stage:512')
    """
    return f"stage:{STAGES[bisect.bisect_right(STAGES, n_events) - 1]}"


def _no_rows(dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32), np.zeros(0, np.float32)


def _draw(user_id: str, now: float, salt: str) -> float:
    """A uniform draw in [0, 1) fixed by user, time and purpose: the replay and the stream draw alike."""
    return zlib.crc32(f"{salt}:{user_id}:{now!r}".encode()) / 2**32
