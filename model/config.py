"""The model's knobs, in one place.

:class:`RecommenderConfig` is the single source of every knob of the
recommender. The stream nests it in :class:`stream.settings.Settings`, which
derives an environment variable from each field (``STREAMREC_TOP_K``,
``STREAMREC_HALF_LIVES_S``...), so every knob is settable where the model runs;
the replay and the benches build the same config.

>>> config = RecommenderConfig(top_k=5)
>>> config.top_k, config.half_lives_s
(5, (300.0, 86400.0, 2592000.0))
>>> RecommenderConfig(half_lives_s=(10.0, 1.0), half_life_weights=(0.5, 0.5))
Traceback (most recent call last):
...
ValueError: half_lives_s must be positive and ordered short to long
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

#: The candidate sources a config may name.
SOURCES = ("content", "covisit", "bundle", "popular")


@dataclasses.dataclass(frozen=True)
class RecommenderConfig:
    """The recommender's knobs (defaults from a sweep on ml-100k's first 30,000 events where one was run)."""

    #: Interest half-lives, short to long (session, day, month), and how much each counts.
    half_lives_s: tuple[float, ...] = (300.0, 86400.0, 30 * 86400.0)
    half_life_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    #: Weight of each event type in interests and counts.
    type_weights: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "cart": 3.0, "purchase": 5.0})
    popularity_half_life_s: float = 7 * 86400.0
    covisit_half_life_s: float = 90 * 86400.0
    bundle_half_life_s: float = 30 * 86400.0
    #: Items bought or carted this close in time count as bought together.
    bundle_window_s: float = 86400.0
    #: Items per recommendation list.
    top_k: int = 10
    exclude_seen: bool = True
    #: Fill the list with decayed popularity when the user's own sources run short.
    fill_with_popular: bool = True
    #: Which candidate sources run (a baseline is the same model with fewer).
    sources: tuple[str, ...] = SOURCES
    #: Co-visitation, item-kNN style (measured on ml-100k's first 30,000 events, the full system:
    #: HR@10 0.135 with the old rule, directed pairs from the last 3 items seeded by the last 5 →
    #: 0.171 symmetric over the last 20 → 0.178 normalised; item-kNN alone there 0.180).
    #: An item taken is paired both ways with the user's previous ``covisit_window`` items (all
    #: that ``UserState.recent`` keeps), the one just before at full weight and each earlier one
    #: ``covisit_gap_decay`` times less: by position, which means the same in any shop's log;
    #: ``covisit_symmetric=False`` counts previous → next only.
    covisit_window: int = 20
    covisit_gap_decay: float = 0.9
    covisit_symmetric: bool = True
    #: The user's last ``covisit_seeds`` items seed it, the latest weighing 1 and each older one
    #: ``covisit_seed_decay`` times the one after it...
    covisit_seeds: int = 20
    covisit_seed_decay: float = 0.8
    #: ... and a pair's score is divided by n_seed^a · n_candidate^b (n: interactions counted), so
    #: a pair of two popular items says less than the same count between rare ones.
    covisit_seed_exponent: float = 0.5
    covisit_candidate_exponent: float = 0.4
    #: How many candidates each source proposes per request.
    candidates_per_source: int = 30
    #: A scene vector counts as this many events of the user's overall interest (shrinkage).
    scene_shrinkage: float = 5.0
    max_scenes: int = 16
    #: Items remembered per user to leave them out of their lists.
    max_seen: int = 500
    #: Events held per user while their item has no vector yet.
    max_pending: int = 50
    #: Neighbours kept per item in the co-occurrence counts (and read per seed; ml-100k's first
    #: 30,000 events, the full system: 5,741 hits at 100, 5,799 at 200, 5,803 at 500, 5,793 at 1,000).
    max_neighbours: int = 200
    #: How many of a user's latest event ids are kept to drop duplicates (client retries; 0 = off).
    dedupe_window: int = 64
    #: Candidates sampled per list as the negatives a miss is learned against.
    negative_samples: int = 20
    #: SGD step of the online ranker (on ml-100k's first 30,000 events, the full system: HR@10 0.176 at
    #: 0.02, 0.179 at 0.005, 0.181 at 0.002).
    learning_rate: float = 0.002
    #: One user adds at most this many events to the global counts at once (popularity, co-occurrence)...
    count_burst: float = 30.0
    #: ... and earns back this many per second of their event time: a flood cannot own "trending".
    count_rate_per_s: float = 1.0
    #: A user taking the same item again within this long does not count it again.
    recount_after_s: float = 86400.0
    #: "similar to X" is claimed only at this cosine or above (else an honest fallback: model/reasons.py).
    similar_reason_min_cos: float = 0.35
    #: An item with fewer counted interactions than this is new: it gets exploration, and says so.
    new_item_interactions: int = 5
    #: Places at the end of each list given to new items by Thompson sampling (0: no exploration)...
    explore_slots: int = 1
    #: ... in this share of the lists (each list's own draw; on ml-100k's first 30k events 1.0 costs
    #: 5.6 % of HR@10 for 80 % new-item coverage, 0.25 costs 1.4 % for 70 %, none: 60 %)...
    explore_share: float = 0.25
    #: ... to those whose sampled cosine to the user's last item reaches this...
    explore_min_cos: float = 0.35
    #: ... sampled with this spread for an item with no interactions (narrower with each one).
    explore_noise: float = 0.15
    #: New items considered per request, nearest first; new items tracked at most (the newest).
    new_items_per_request: int = 10
    max_new_items: int = 5000
    #: From this many items on, the item index searches approximately (faiss IVF; exact below,
    #: where exact is faster: bench/ann.py), visiting ``ann_nprobe`` of its lists per query.
    ann_min_items: int = 1_000
    ann_nprobe: int = 16
    #: The popularity rankings candidates come from are redone after this many counted events.
    popular_refresh: int = 64
    #: Item representations learned from the stream (model/representations.py; 0: off): their size,
    #: the user context they read (the latest ``learned_window`` items, the a-th weighing
    #: ``learned_age_decay ** a`` to start with), and the trainer's rounds: every
    #: ``learned_interval`` examples, ``learned_epochs`` passes over them plus a replay sample
    #: ``learned_replay`` times as large from the last ``learned_buffer``, Adam at ``learned_learning_rate``.
    learned_dim: int = 64
    learned_window: int = 20
    learned_age_decay: float = 0.9
    learned_interval: int = 1000
    learned_epochs: int = 2
    learned_replay: float = 2.0
    learned_batch: int = 256
    learned_buffer: int = 50_000
    learned_learning_rate: float = 1e-3
    learned_l2: float = 1e-5

    def __post_init__(self) -> None:
        if len(self.half_lives_s) != len(self.half_life_weights):
            raise ValueError("half_lives_s and half_life_weights need the same length")
        if sorted(self.half_lives_s) != list(self.half_lives_s) or min(self.half_lives_s) <= 0:
            raise ValueError("half_lives_s must be positive and ordered short to long")
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown candidate sources {sorted(unknown)}")
