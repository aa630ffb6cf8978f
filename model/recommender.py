"""The recommender core: ``observe`` an event into a user's state, ``recommend`` top-k with reasons.

The Faust agents and the in-process replay call exactly these methods; they
differ only in where the state lives (Redis or a dict) and in who learns the
ranker's feedback (a trainer agent, or the replay itself).

``recommend`` gathers candidates from four sources — the items nearest to each
of the user's interest vectors (content), decayed co-visitation from the
user's last items ("people who took X next took Y"), decayed co-purchase
("often bought with X"), and decayed popularity overall and in the scene
(trending) — computes features for every candidate at once, and ranks them
with an online logistic regression (:class:`model.ranker.OnlineRanker`). Each
item's reason comes from the feature group that contributed most to its score.
The list is remembered in the user's state; when the user's next event arrives,
``observe`` turns it into labelled examples (taken = 1, shown but not taken = 0,
plus the taken item if it was not shown) before folding the event in.

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

import dataclasses
import random
import zlib
from collections import defaultdict

import numpy as np

from model.config import RecommenderConfig
from model.cooccurrence import Cooccurrence
from model.features import REASONS, features_for, initial_ranker
from model.index import ItemIndex
from model.interests import Impressions, InterestVector, UserState
from model.popularity import DecayedPopularity
from model.ranker import OnlineRanker
from model.reasons import reason_for
from model.schema import Event, Item, Recommended
from model.threads import warn_if_blas_threaded

BUNDLE_TYPES = ("cart", "purchase")


@dataclasses.dataclass
class Feedback:
    """Labelled impressions from one event: what the ranker learns."""

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
        self.index = ItemIndex(dim)
        self.popularity = DecayedPopularity(config.popularity_half_life_s)
        self.scene_popularity: dict[str, DecayedPopularity] = {}
        self.covisit = Cooccurrence(config.covisit_half_life_s, config.max_neighbours)
        self.bundles = Cooccurrence(config.bundle_half_life_s, config.max_neighbours)
        declared = features_for(config)
        self.features = [f.name for f in declared]
        self.ranker = ranker or initial_ranker(config)
        self._reason_of_feature = np.array([REASONS.index(f.reason) for f in declared])
        #: Items with too little evidence yet for the ranker to show them, oldest first (bounded):
        #: what the exploration slot chooses from.
        self.new_items: dict[str, None] = {}

    def add_items(self, items: list[Item], vectors: np.ndarray) -> None:
        """Put items (with their text vectors) in the catalogue; those the counts have not met yet are new."""
        self.index.add(items, vectors)
        for item in items:
            if self.is_new(item.item_id):
                self.new_items.pop(item.item_id, None)
                self.new_items[item.item_id] = None
        while len(self.new_items) > self.config.max_new_items:
            del self.new_items[next(iter(self.new_items))]

    def new_state(self, user_id: str) -> UserState:
        return UserState(user_id, InterestVector(self.dim, self.config.half_lives_s))

    def weight(self, event: Event) -> float:
        return float(self.config.type_weights[event.type])

    def remove_items(self, item_ids: list[str]) -> list[str]:
        """Delete items from the catalogue: never a candidate or a reason again; returns those that were here.

        Their co-occurrence rows go too (memory stays bounded by the live catalogue);
        neighbour entries pointing at them are skipped, as for any item not in the index.
        """
        removed = self.index.remove(item_ids)
        for item_id in removed:
            self.new_items.pop(item_id, None)
            self.covisit.rows.pop(item_id, None)
            self.bundles.rows.pop(item_id, None)
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
        if state.is_duplicate(event.event_id):
            return None
        state.remember_event(event.event_id, event.fingerprint, self.config.dedupe_window)
        feedback = self._label(state, event)
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
        popularity = None
        if self.contributes(state, event):
            popularity = (event.item_id, self.popularity.log_increment(weight, event.ts))
            if count:
                self._count_pairs(state, event, weight)
                self.popularity.observe(event.item_id, weight, event.ts)
                self._scene_popularity(event.scene).observe(event.item_id, weight, event.ts)
                if not self.is_new(event.item_id):
                    self.new_items.pop(event.item_id, None)
        state.mark_seen(event.item_id, event.ts, event.type, self.config.max_seen)
        state.n_events += 1
        return Observation(feedback, popularity)

    def learn(self, feedback: Feedback | None) -> None:
        """Update the ranker from labelled impressions (what the trainer does with the feedback topic)."""
        if feedback is not None and len(feedback.y):
            self.ranker.learn_rows(feedback.X, feedback.y)

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

    def _label(self, state: UserState, event: Event) -> Feedback | None:
        """Pairs (taken item, another candidate): the taken one should have ranked above.

        Which negatives matters. The items shown are by construction the ones the current
        weights like best, so pitting a taken-but-not-shown item against them teaches the
        model that liked features are bad, and the weights collapse (measured on ml-100k:
        HR@10 0.107 → 0.050, pointwise and pairwise alike). So: on a hit, the taken item
        against the others shown (same distribution, the top); on a miss, against a uniform
        sample of that request's candidates; and if no source proposed the taken item at
        all, no pairs — a ranker cannot fix what candidate generation never offered.
        """
        shown = state.shown
        if shown is None:
            return None
        state.shown = None
        item = event.item_id
        hit = item in shown.item_ids
        if hit:
            at = shown.item_ids.index(item)
            positive, negatives = shown.features[at], np.delete(shown.features, at, axis=0)
        elif item in shown.pool:
            in_sample = [n for n, i in enumerate(shown.sample_ids) if i == item]
            if in_sample:
                positive = shown.sample_features[in_sample[0]]
            else:  # its features as they were then: the state has not seen this event yet
                positive = self._feature_matrix(state, _Candidates([item], self.index), shown.ts, shown.scene)[0]
            negatives = np.delete(shown.sample_features, in_sample, axis=0)
        else:
            return Feedback(np.zeros((0, len(self.features))), np.zeros(0), False, shown.model_version)
        diffs = positive.astype(np.float64) - negatives.astype(np.float64)
        X = np.vstack([diffs, -diffs])  # both orders, so the logistic loss stays symmetric
        y = np.concatenate([np.ones(len(diffs)), np.zeros(len(diffs))])
        return Feedback(X, y, hit, shown.model_version)

    def _count_pairs(self, state: UserState, event: Event, weight: float) -> None:
        # Co-visitation: the user's last few items each lead to this one, nearer ones count more.
        for distance, (previous, _) in enumerate(reversed(state.recent[-3:])):
            if self.in_catalogue(previous):
                self.covisit.add(previous, event.item_id, weight / (1 + distance), event.ts)
        if event.type in BUNDLE_TYPES:
            for previous, kind in state.recent:
                if (kind in BUNDLE_TYPES and self.in_catalogue(previous)
                        and event.ts - state.seen.get(previous, -np.inf) <= self.config.bundle_window_s):
                    self.bundles.add_both(previous, event.item_id, weight, event.ts)

    def _scene_vector(self, state: UserState, scene: str) -> InterestVector:
        vector = state.scenes.get(scene)
        if vector is None:
            if len(state.scenes) >= self.config.max_scenes:  # bounded: forget the stalest scene
                del state.scenes[min(state.scenes, key=lambda s: state.scenes[s].ts)]
            vector = state.scenes[scene] = InterestVector(self.dim, self.config.half_lives_s[-1:])
        return vector

    def _scene_popularity(self, scene: str) -> DecayedPopularity:
        pop = self.scene_popularity.get(scene)
        if pop is None:
            if len(self.scene_popularity) >= 4 * self.config.max_scenes:
                scene = "other"  # scenes are a small vocabulary; a flood of new ones is junk
            pop = self.scene_popularity.setdefault(scene, DecayedPopularity(self.config.popularity_half_life_s))
        return pop

    # --- recommending
    def recommend(self, state: UserState, k: int | None = None, now: float | None = None,
                  scene: str | None = None, record: bool = True) -> list[Recommended]:
        """The user's top ``k``, best first, each with a reason.

        ``now`` defaults to the user's last event time; ``scene`` is where the list
        is shown. With ``record`` the list is remembered in the state as the
        impression the user's next event will label.
        """
        k = self.config.top_k if k is None else k
        now = state.interests.ts if now is None else now
        if not np.isfinite(now):
            now = 0.0
        scene = scene or "home"
        exclude = state.seen if self.config.exclude_seen else {}
        directions = self._directions(state, scene)
        candidates = self._candidates(state, now, scene, exclude, directions)
        if not candidates.ids:
            return []
        X = self._feature_matrix(state, candidates, now, scene, directions)
        logits = self.ranker.score_many(X)
        order = np.argsort(-logits, kind="stable")[:k]
        if self.config.explore_slots and candidates.new:
            order = self._explore(state, now, candidates, order, k)
        if record:
            state.shown = self._impressions(state, candidates, X, order, scene, now)
        return self._explain(state, candidates, order, logits, X[order], scene)

    def _explore(self, state: UserState, now: float, candidates: _Candidates, order: np.ndarray,
                 k: int) -> np.ndarray:
        """Give the last ``explore_slots`` places of the list to new items, chosen by Thompson sampling.

        Cold start is a promise: a new item has no popularity or co-visitation yet, so
        the ranker would never show it, and it would never earn any. Each new candidate's
        value is drawn around its cosine to the user's last item, spread the wider the
        less evidence it has (``explore_noise / sqrt(1 + interactions)``); the best draws
        above ``explore_min_cos`` take the slots, so exposure goes to new items that
        plausibly fit, more to the uncertain ones, and never to mismatches.
        """
        shown = set(order.tolist())
        positions = {row: i for i, row in enumerate(candidates.rows.tolist())}
        pool = [(positions[row], cos) for row, cos in candidates.new.items() if positions[row] not in shown]
        if not pool:
            return order
        rng = np.random.default_rng(zlib.crc32(f"explore:{state.user_id}:{now!r}".encode()))
        if rng.random() >= self.config.explore_share:
            return order
        counts = np.array([self.popularity.count(candidates.ids[i]) for i, _ in pool])
        draws = np.array([cos for _, cos in pool]) + rng.standard_normal(len(pool)) * (
            self.config.explore_noise / np.sqrt(1.0 + counts))
        picked = [pool[j][0] for j in np.argsort(-draws)[: self.config.explore_slots]
                  if draws[j] >= self.config.explore_min_cos]
        if not picked:
            return order
        keep = order[: k - len(picked)] if len(order) + len(picked) > k else order
        candidates.explored.update(picked)
        return np.concatenate([keep, np.array(picked, dtype=order.dtype)])

    def _impressions(self, state: UserState, candidates: _Candidates, X: np.ndarray, order: np.ndarray,
                     scene: str, now: float) -> Impressions:
        rest = np.ones(len(candidates.ids), dtype=bool)
        rest[order] = False
        rest = np.flatnonzero(rest).tolist()
        # Seeded by user and time, so the in-process replay and the stream draw the same sample.
        rng = random.Random(zlib.crc32(f"{state.user_id}:{now!r}".encode()))
        sample = rng.sample(rest, min(len(rest), self.config.negative_samples))
        ids = candidates.ids
        return Impressions([ids[i] for i in order.tolist()], X[order].astype(np.float32), scene, now,
                           self.ranker.version, [ids[i] for i in sample], X[sample].astype(np.float32), ids)

    def _candidates(self, state: UserState, now: float, scene: str, exclude, directions: np.ndarray) -> _Candidates:
        """Candidate rows of the index from every source, vectorised where the catalogue is scanned."""
        config, n, index = self.config, self.config.candidates_per_source, self.index
        found = _Candidates()
        if not len(index):
            return found
        if "content" in config.sources and not state.interests.empty:
            # Candidates come from the half-lives holding evidence and the last item taken
            # (the fastest "scale"); a zero direction would propose arbitrary items. The
            # scene direction proposes none: it only ranks.
            columns = [c for c, live in enumerate(state.interests.mass > 0) if live]
            if directions[-2].any():
                columns.append(len(directions) - 2)
            excluded = [r for r in map(index.rows.get, exclude) if r is not None]
            rows, _ = index.search(directions[columns], min(n, len(index) - 1), excluded)
            found.add_rows(rows[rows >= 0])
        if "covisit" in config.sources:
            seeds = state.recent[-config.covisit_seeds:]
            found.add_pairs("covisit", self._from_pairs(self.covisit, seeds, now, n, exclude), index)
        if "bundle" in config.sources:
            seeds = [r for r in state.recent if r[1] in BUNDLE_TYPES][-3:]
            found.add_pairs("bundle", self._from_pairs(self.bundles, seeds, now, n, exclude), index)
        if config.explore_slots and self.new_items and not state.interests.empty:
            # New items, nearest to what the user took last: the exploration slot's choice.
            ids = [i for i in self.new_items if i not in exclude]
            direction = directions[-2] if directions[-2].any() else directions[len(config.half_lives_s) - 1]
            if ids:
                rows = np.array([index.rows[i] for i in ids], dtype=np.int64)
                cosines = index.matrix[rows] @ direction
                best = np.argsort(-cosines, kind="stable")[: config.new_items_per_request]
                found.add_rows(rows[best])
                found.new = dict(zip(rows[best].tolist(), cosines[best].tolist()))
        if "popular" in config.sources or (config.fill_with_popular and found.size < config.top_k):
            pops = [self.popularity] + ([self.scene_popularity[scene]] if scene in self.scene_popularity else [])
            for pop in pops:
                rows = [r for r in map(index.rows.get, pop.top_ids(n, exclude)) if r is not None]
                found.add_rows(rows)
                found.popular.update(rows)
        found.finish(index)
        return found

    def _from_pairs(self, pairs: Cooccurrence, seeds, now: float, n: int, exclude):
        """Neighbours of the seed items, nearer seeds weighing more; each keeps its strongest seed."""
        total: dict[str, float] = defaultdict(float)
        anchor: dict[str, tuple[float, str]] = {}
        for distance, (seed, _) in enumerate(reversed(seeds)):
            for item_id, score in pairs.neighbours(seed, n, now, exclude):
                score /= 1 + distance
                total[item_id] += score
                if score > anchor.get(item_id, (0.0, ""))[0]:
                    anchor[item_id] = (score, seed)
        best = sorted(total.items(), key=lambda kv: -kv[1])[:n]
        return [(item_id, score, anchor[item_id][1]) for item_id, score in best]

    def _feature_matrix(self, state: UserState, candidates: _Candidates, now: float, scene: str,
                        directions: np.ndarray | None = None) -> np.ndarray:
        """One row per candidate, columns in :func:`model.features.features_for` order."""
        ids = candidates.ids
        directions = self._directions(state, scene) if directions is None else directions
        cos = self.index.matrix[candidates.rows] @ directions.T  # half-lives, last item, scene (0: no evidence)
        if candidates.generated:
            covisit, bundle = candidates.scores("covisit"), candidates.scores("bundle")
        else:  # features of an item that no source proposed (a label's positive)
            seeds = [r for r in state.recent if r[1] in BUNDLE_TYPES][-3:]
            covisit = self._pair_scores(self.covisit, state.recent[-self.config.covisit_seeds:], ids, now)
            bundle = self._pair_scores(self.bundles, seeds, ids, now)
        popularity = self.popularity.scores(ids, now)
        scene_pop = self.scene_popularity[scene].scores(ids, now) if scene in self.scene_popularity else 0 * popularity
        first = self.popularity.first_seen(ids)
        age_days = np.where(np.isfinite(first), np.maximum(now - first, 0.0) / 86400.0, 0.0)
        return np.column_stack([cos, np.log1p(covisit), np.log1p(bundle), np.log1p(popularity),
                                np.log1p(scene_pop), np.log1p(age_days)])

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

    def _pair_scores(self, pairs: Cooccurrence, seeds, ids: list[str], now: float) -> np.ndarray:
        return np.array([sum(pairs.score(seed, i, now) / (1 + d) for d, (seed, _) in enumerate(reversed(seeds)))
                         for i in ids])

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
    def _explain(self, state: UserState, candidates: _Candidates, order: np.ndarray, logits: np.ndarray,
                 X: np.ndarray, scene: str) -> list[Recommended]:
        """The ranked items, each with the reason of the feature group that contributed most to its score."""
        contributions = self.ranker.contributions(X)
        by_group = np.zeros((len(X), len(REASONS)))
        np.add.at(by_group.T, self._reason_of_feature, contributions.T)
        groups = np.argmax(by_group, axis=1)
        similar = self._most_similar_recent(state, candidates.rows[order])
        out = []
        for i, g, near in zip(order.tolist(), groups.tolist(), similar):
            item_id, kind = candidates.ids[i], "new" if i in candidates.explored else REASONS[g]
            anchor = candidates.anchor(kind, item_id) if kind in ("covisit", "bundle") else None
            reason, source = reason_for(
                kind, scene, pair_title=self.index.items[anchor].title if anchor in self.index else None,
                similar=None if near is None else (self.index.items[near[0]].title, near[1], near[2]),
                trending=candidates.rows[i] in candidates.popular, new=self.is_new(item_id),
                min_cosine=self.config.similar_reason_min_cos)
            out.append(Recommended(item_id, float(logits[i]), reason, source))
        return out

    def _most_similar_recent(self, state: UserState, rows: np.ndarray) -> list[tuple[str, str, float] | None]:
        """For each item row, the user's recently taken (item, event type, cosine) most similar to it (one product)."""
        recent = [(i, kind) for i, kind in state.recent if i in self.index]
        if not recent:
            return [None] * len(rows)
        matrix = self.index.matrix
        similarity = matrix[[self.index.rows[i] for i, _ in recent]] @ matrix[rows].T  # (recent, items)
        best = np.argmax(similarity, axis=0)
        return [(*recent[b], float(similarity[b, n])) for n, b in enumerate(best.tolist())]

    def is_new(self, item_id: str) -> bool:
        """Whether the item has had fewer than ``new_item_interactions`` counted interactions."""
        return self.popularity.count(item_id) < self.config.new_item_interactions


class _Candidates:
    """Candidate index rows, each once, with pair scores and the seed item behind each."""

    def __init__(self, ids: list[str] | None = None, index: ItemIndex | None = None):
        self.generated = ids is None
        #: Rows the popularity sources proposed: those may honestly be called trending.
        self.popular: set[int] = set()
        #: Rows of new items proposed for exploration, with their cosine to the user; and, by
        #: position in ``ids``, those the exploration slot chose.
        self.new: dict[int, float] = {}
        self.explored: set[int] = set()
        self._rows: list[np.ndarray] = []
        self._pairs: dict[str, dict[str, tuple[float, str]]] = {"covisit": {}, "bundle": {}}
        self.ids: list[str] = list(ids or [])
        self.rows = np.array([index.rows[i] for i in self.ids], dtype=np.int64) if index else np.zeros(0, int)

    @property
    def size(self) -> int:
        return sum(len(r) for r in self._rows)

    def add_rows(self, rows) -> None:
        self._rows.append(np.asarray(rows, dtype=np.int64))

    def add_pairs(self, source: str, found, index: ItemIndex) -> None:
        table = self._pairs[source]
        rows = []
        for item_id, score, anchor in found:
            row = index.rows.get(item_id)
            if row is not None:  # only items we can describe
                table[item_id] = (score, anchor)
                rows.append(row)
        self.add_rows(rows)

    def finish(self, index: ItemIndex) -> None:
        self.rows = np.unique(np.concatenate(self._rows)) if self._rows else np.zeros(0, dtype=np.int64)
        self.ids = [index.ids[r] for r in self.rows.tolist()]

    def scores(self, source: str) -> np.ndarray:
        table = self._pairs[source]
        return np.array([table[i][0] if i in table else 0.0 for i in self.ids])

    def anchor(self, source: str, item_id: str) -> str | None:
        value = self._pairs[source].get(item_id)
        return value[1] if value else None
