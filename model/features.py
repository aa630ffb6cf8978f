"""The ranker's features, each declared once: its name, the reason it speaks for, its starting weight.

Every candidate of a request gets one row of these features (computed in
:mod:`model.recommender`), scored by :class:`model.ranker.OnlineRanker`. The
reason shown beside an item is that of the reason group whose features
contributed most to its score, so a feature's group is part of its
declaration, not an array to keep parallel by hand.

>>> from model.config import RecommenderConfig
>>> names = [f.name for f in features_for(RecommenderConfig(half_lives_s=(60.0,), half_life_weights=(1.0,)))]
>>> names[:5]
['cos_h0', 'cos_last', 'cos_scene', 'covisit', 'bundle']
>>> names[5:]
['popularity', 'scene_popularity', 'stage_popularity', 'newcomer_popularity', 'item_age', 'learned']
"""

from __future__ import annotations

import dataclasses

from model.config import RecommenderConfig
from model.ranker import OnlineRanker

#: The reasons an item can be shown for, in the order the recommender groups contributions.
REASONS = ("content", "scene", "covisit", "bundle", "popular", "new", "learned")
#: The learned score's starting weight.
LEARNED_PRIOR = 0.3


@dataclasses.dataclass(frozen=True)
class Feature:
    """One column of the ranker's input."""

    name: str
    #: The reason group it speaks for (one of :data:`REASONS`).
    reason: str
    #: Its weight before any learning, so the very first lists are sensible.
    prior: float = 0.0


def features_for(config: RecommenderConfig) -> list[Feature]:
    """The features, in column order, for ``config``'s half-lives.

    Priors: similarity at each half-life by its blend weight, co-visitation and
    co-purchase counts, a little popularity; item age starts neutral.
    """
    return [
        *(Feature(f"cos_h{i}", "content", 3.0 * w) for i, w in enumerate(config.half_life_weights)),
        Feature("cos_last", "content", 1.0),   # cosine to the last item taken
        Feature("cos_scene", "scene", 0.5),    # cosine to the scene's (shrunk) interest
        Feature("covisit", "covisit", 1.0),    # log1p of decayed co-visitation from the user's last items
        Feature("bundle", "bundle", 1.0),      # log1p of decayed co-purchase
        Feature("popularity", "popular", 0.3),
        Feature("scene_popularity", "popular", 0.1),
        Feature("stage_popularity", "popular", 0.1),  # among users with as many events behind them
        # The same, divided by 1 + the user's events: what peers took counts most while a user
        # has no history of their own to go by (one weight for every stage cannot say that).
        Feature("newcomer_popularity", "popular", 1.0),
        Feature("item_age", "new", 0.0),       # log1p of days since the stream first saw the item
        # q_j · c_u + b_j in the learned space (model/representations.py): what people take next
        *([Feature("learned", "learned", LEARNED_PRIOR)] if config.learned_dim else []),
    ]


def initial_ranker(config: RecommenderConfig) -> OnlineRanker:
    """A ranker over ``config``'s features with their prior weights: what a recommender and a trainer start from."""
    features = features_for(config)
    return OnlineRanker([f.name for f in features], prior={f.name: f.prior for f in features if f.prior},
                        learning_rate=config.learning_rate)
