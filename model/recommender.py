"""The recommender core: ``observe`` an event into a user's state, ``recommend`` top-k with reasons.

The Faust agents and the in-process replay call exactly these two methods;
they differ only in where the state lives (Redis or a dict).

Candidates come from two sources: the items nearest to each of the user's
interest vectors (content), and decayed popularity (for users with no history
yet, and to fill the list). A content candidate is scored by the blend of its
cosines to the user's interests at each half-life; its reason names the
recently taken item it is most similar to.

Examples
--------
>>> import numpy as np
>>> from model.schema import Event, Item
>>> rec = Recommender(RecommenderConfig(half_lives_s=(600.0, 86400.0), half_life_weights=(0.6, 0.4)), dim=2)
>>> rec.index.add([Item("tea1", "Green Tea", "tea"), Item("tea2", "Oolong Tea", "tea"),
...                Item("cof1", "Espresso Beans", "coffee")],
...               np.array([[1.0, 0.1], [0.9, 0.2], [0.0, 1.0]], dtype=np.float32))
>>> user = rec.new_state("u1")
>>> [r.item_id for r in rec.recommend(user, k=2, now=0.0)]   # no history, nothing popular yet
[]
>>> rec.observe(user, Event("e1", "u1", "tea1", "click", 1.7e9, "home"))
>>> top = rec.recommend(user, k=1, now=1.7e9)
>>> top[0].item_id, top[0].reason
('tea2', 'similar to “Green Tea” that you clicked')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from model.index import ItemIndex
from model.interests import InterestVector, UserState
from model.popularity import DecayedPopularity
from model.schema import Event, Recommended

PAST_TENSE = {"view": "viewed", "click": "clicked", "cart": "added to your cart", "purchase": "bought"}


@dataclasses.dataclass(frozen=True)
class RecommenderConfig:
    """The model's knobs; the stream builds it from :class:`stream.settings.Settings`."""

    half_lives_s: tuple[float, ...] = (300.0, 86400.0, 30 * 86400.0)
    half_life_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    type_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0})
    popularity_half_life_s: float = 6 * 3600.0
    k: int = 10
    exclude_seen: bool = True
    #: Fill the list with decayed popularity when the user's own sources run short.
    fill_with_popular: bool = True
    max_seen: int = 500
    max_pending: int = 50
    #: How many nearest neighbours each interest vector proposes, per slot of k.
    candidates_per_slot: int = 3

    def __post_init__(self) -> None:
        if len(self.half_lives_s) != len(self.half_life_weights):
            raise ValueError("half_lives_s and half_life_weights need the same length")
        if sorted(self.half_lives_s) != list(self.half_lives_s) or min(self.half_lives_s) <= 0:
            raise ValueError("half_lives_s must be positive and ordered short to long")


class Recommender:
    """Interest vectors over an item index, plus decayed popularity.

    Parameters
    ----------
    config
        The knobs.
    dim
        Item vector size (384 for all-MiniLM-L6-v2).
    """

    def __init__(self, config: RecommenderConfig, dim: int):
        self.config = config
        self.dim = dim
        self.index = ItemIndex(dim)
        self.popularity = DecayedPopularity(config.popularity_half_life_s)
        self._blend = np.asarray(config.half_life_weights, dtype=np.float32)

    def new_state(self, user_id: str) -> UserState:
        return UserState(user_id, InterestVector(self.dim, self.config.half_lives_s))

    def weight(self, event: Event) -> float:
        return float(self.config.type_weights[event.type])

    def observe(self, state: UserState, event: Event) -> None:
        """Fold ``event`` into ``state`` and into popularity."""
        weight = self.weight(event)
        vector = self.index.vector(event.item_id)
        if vector is None:
            # The catalogue has not caught up with this item yet: hold the event and fold it
            # in with its own timestamp later (exact, since the interest sums are order-free).
            state.pending.append((event.item_id, event.ts, weight))
            del state.pending[: -self.config.max_pending]
        else:
            state.interests.add(vector, weight, event.ts)
        self.fold_pending(state)
        state.mark_seen(event.item_id, event.ts, event.type, self.config.max_seen)
        state.n_events += 1
        self.popularity.observe(event.item_id, weight, event.ts)

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

    def recommend(self, state: UserState, k: int | None = None, now: float | None = None,
                  scene: str | None = None) -> list[Recommended]:
        """The user's top ``k``, best first, each with a reason (``scene``: where the list is shown)."""
        k = self.config.k if k is None else k
        now = state.interests.ts if now is None else now
        exclude = state.seen if self.config.exclude_seen else ()
        out: list[Recommended] = []
        if not state.interests.empty and len(self.index):
            out = self._content(state, k, exclude)
        if len(out) < k and self.config.fill_with_popular:
            taken = {r.item_id for r in out}
            for item_id, score in self.popularity.top(k - len(out), now, exclude=taken | set(exclude)):
                if item_id in self.index:  # only items we can describe are recommendable
                    out.append(Recommended(item_id, score, "trending now", "popular"))
        return out[:k]

    def _content(self, state: UserState, k: int, exclude) -> list[Recommended]:
        """Each half-life fills its share of the ``k`` slots with its own nearest items.

        Ranking one blend of all scales lets a long, sharp history drown a fresh
        interest; giving the short scale its own slots (as multi-interest
        retrieval does) makes the list follow a switch within a few events while
        the long scales keep the rest of it stable.
        """
        live = state.interests.mass > 0
        blend = self._blend * live
        blend = blend / blend.sum()
        cosines = self.index.matrix @ state.interests.unit_vectors().T  # (items, scales)
        scores = cosines @ blend
        quota = _slots(blend, k)
        chosen: dict[str, float] = {}
        for scale in np.flatnonzero(quota):
            taken = 0
            for item_id, _ in self.index.top(cosines[:, scale], k + len(chosen), exclude):
                if item_id not in chosen:
                    chosen[item_id] = float(scores[self.index.rows[item_id]])
                    taken += 1
                    if taken == quota[scale]:
                        break
        ranked = sorted(chosen.items(), key=lambda kv: -kv[1])[:k]
        return [Recommended(item_id, score, *self._explain(state, item_id)) for item_id, score in ranked]

    def _explain(self, state: UserState, item_id: str) -> tuple[str, str]:
        """Point to the recently taken item most similar to ``item_id``."""
        recent = [(i, kind) for i, kind in state.recent if i in self.index]
        if not recent:
            return "matches your interests", "content"
        vectors = np.stack([self.index.vector(i) for i, _ in recent])
        best = int(np.argmax(vectors @ self.index.vector(item_id)))
        anchor, kind = recent[best]
        title = self.index.items[anchor].title
        return f"similar to “{title}” that you {PAST_TENSE[kind]}", "content"


def _slots(weights: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` slots in proportion to ``weights`` (largest remainder), e.g. 10 by (.5, .3, .2) → 5, 3, 2."""
    exact = weights * k
    slots = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - slots), kind="stable")[: k - slots.sum()]:
        slots[i] += 1
    return slots
