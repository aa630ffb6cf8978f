"""A user's interests: decay-weighted sums of the vectors of the items they took.

Each half-life keeps its own sum, ``v_h = Σ_i w_i · e_i · 2^(-(T - t_i)/h)``, where
``T`` is the newest event time seen. Written this way the state does not depend
on the order events arrive in: an event older than ``T`` is added already
decayed, a newer one first decays the sum. Redelivered or late events therefore
land exactly where they would have, and a held event (item not yet encoded) can
be folded in later with its own timestamp.

Examples
--------
>>> import numpy as np
>>> iv = InterestVector(dim=2, half_lives=(10.0, 1000.0))
>>> iv.add(np.array([1.0, 0.0]), weight=1.0, ts=0.0)
>>> iv.add(np.array([0.0, 1.0]), weight=1.0, ts=10.0)
>>> iv.vectors.round(3)   # one half-life later the first item counts half at h=10
array([[0.5  , 1.   ],
       [0.993, 1.   ]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import orjson

#: The fewest (item, event type) pairs a user's ``recent`` keeps: what explanations point back to.
MIN_RECENT = 20


class InterestVector:
    """Decay-weighted interest at several half-lives, in one ``(len(half_lives), dim)`` matrix.

    Parameters
    ----------
    dim
        Size of the item vectors.
    half_lives
        Half-lives in seconds, short to long (session, day, month...).

    Attributes
    ----------
    vectors
        The sums, as of ``ts``.
    mass
        The decayed sum of weights per half-life: how much evidence each row holds.
    ts
        Time of the newest event folded in (``-inf`` before any).
    """

    __slots__ = ("half_lives", "mass", "ts", "vectors")

    def __init__(self, dim: int, half_lives: Sequence[float]):
        self.half_lives = np.asarray(half_lives, dtype=np.float64)
        self.vectors = np.zeros((len(half_lives), dim), dtype=np.float32)
        self.mass = np.zeros(len(half_lives), dtype=np.float64)
        self.ts = float("-inf")

    def add(self, vector: np.ndarray, weight: float, ts: float) -> None:
        """Fold in one taken item's ``vector`` with ``weight`` at time ``ts``."""
        if ts >= self.ts:
            if self.ts != float("-inf"):
                decay = np.exp2(-(ts - self.ts) / self.half_lives)
                self.vectors *= decay[:, None].astype(np.float32)
                self.mass *= decay
            self.ts = ts
            scale = np.full(len(self.half_lives), weight)
        else:  # late event: add it already decayed to the state's time
            scale = weight * np.exp2(-(self.ts - ts) / self.half_lives)
        self.vectors += (scale[:, None] * vector[None, :]).astype(np.float32)
        self.mass += scale

    def unit_vectors(self) -> np.ndarray:
        """Each half-life's direction (rows of zeros where there is no evidence yet)."""
        norms = np.sqrt(np.einsum("ij,ij->i", self.vectors, self.vectors))[:, None]
        return np.divide(self.vectors, norms, out=np.zeros_like(self.vectors), where=norms > 0)

    @property
    def empty(self) -> bool:
        return not self.mass.any()


@dataclasses.dataclass
class Impressions:
    """The list last shown to a user, with the features each item was ranked on.

    When the user's next event arrives these become labelled examples for the
    ranker: the item taken is a positive, the others shown are negatives.
    """

    item_ids: list[str]
    features: np.ndarray
    scene: str
    ts: float
    model_version: int
    #: A uniform sample of the other candidates, with features: unbiased negatives for a miss.
    sample_ids: list[str] = dataclasses.field(default_factory=list)
    sample_features: np.ndarray | None = None
    #: Every candidate of that request: whether the ranker could have shown the item taken.
    pool: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class UserState:
    """Everything the model keeps about one user.

    ``seen`` maps item id to the last time the user took it, oldest first and
    bounded, so exclusion of consumed items costs bounded memory per user.
    ``recent`` holds the last few (item, event type) pairs that explanations
    point back to. ``pending`` holds events whose item has no vector yet.
    ``scenes`` keeps one interest vector per scene (multi-scenario), at the
    scale of the longest half-life, shrunk toward the user's overall interest
    at scoring time when a scene has little evidence. ``shown`` is the last
    list recommended, waiting to be labelled by the next event.
    """

    user_id: str
    interests: InterestVector
    seen: OrderedDict[str, float] = dataclasses.field(default_factory=OrderedDict)
    recent: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    pending: list[tuple[str, float, float]] = dataclasses.field(default_factory=list)
    n_events: int = 0
    scenes: dict[str, InterestVector] = dataclasses.field(default_factory=dict)
    shown: Impressions | None = None
    #: Ids of the user's latest events: a client's retry (same event_id) is applied once.
    #: ... with each one's :attr:`model.schema.Event.fingerprint`, to tell a retry from a clash.
    event_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Per partition of the events log, the offset of the last event applied from it: where a
    #: redelivery stops being new. One partition in the normal case (the topic is keyed by
    #: user); more only for events that arrived with another key and were re-keyed.
    positions: dict[int, int] = dataclasses.field(default_factory=dict)
    #: How many of the user's next events may still add to the global counts, as of ``budget_ts``
    #: (None: a full budget). See :meth:`spend_count_budget`.
    count_budget: float | None = None
    budget_ts: float = float("-inf")
    #: The index rows of ``seen``, kept by the recommender while the state lives (never stored):
    #: (index generation, rows), or None until asked for.
    seen_rows: tuple[int, set[int]] | None = dataclasses.field(default=None, compare=False, repr=False)

    def is_duplicate(self, event_id: str) -> bool:
        return event_id in self.event_ids

    def is_retry(self, event_id: str, fingerprint: str) -> bool:
        """Whether ``event_id`` was seen with this same content (a retry, not two events under one id).

        Ids remembered before fingerprints were kept count as retries.
        """
        return self.event_ids.get(event_id) in (fingerprint, "")

    def remember_event(self, event_id: str, fingerprint: str, window: int) -> None:
        """Keep ``event_id`` among the last ``window`` ids (0: keep none, no deduplication)."""
        self.event_ids[event_id] = fingerprint
        for old in list(self.event_ids)[: max(len(self.event_ids) - window, 0)]:
            del self.event_ids[old]

    def applied(self, partition: int, offset: int) -> bool:
        """Whether the event at ``offset`` of ``partition`` of the events log is already in this state.

        Offsets are committed after the state is written, so a redelivered event is one
        at or before the last position applied from its partition. Events of one
        partition arrive in order (re-keyed ones too: each source partition is
        forwarded in order), so one offset per partition is enough.
        """
        last = self.positions.get(partition)
        return last is not None and offset <= last

    def spend_count_budget(self, ts: float, burst: float, rate_per_s: float) -> bool:
        """Whether this event may add to the global counts; spends one from the user's budget if so.

        A token bucket on the user's own event time: ``burst`` at once, refilled at
        ``rate_per_s`` (events older than the newest refill nothing). One user's flood
        then moves popularity and co-occurrence by ``burst`` events at most, while a
        person's pace stays far inside it (ml-100k: 0 of 100,003 ratings over a
        burst of 30 refilled at 1/s).
        """
        budget = burst if self.count_budget is None else self.count_budget
        if ts > self.budget_ts:
            if self.budget_ts != float("-inf"):
                budget = min(burst, budget + (ts - self.budget_ts) * rate_per_s)
            self.budget_ts = ts
        spent = budget >= 1.0
        self.count_budget = budget - 1.0 if spent else budget
        return spent

    def mark_applied(self, partition: int, offset: int) -> None:
        self.positions[partition] = max(offset, self.positions.get(partition, offset))

    def mark_seen(self, item_id: str, ts: float, kind: str, max_seen: int, max_recent: int = MIN_RECENT) -> bool:
        """Remember ``item_id`` as taken; returns whether an older item had to be forgotten for it."""
        self.seen[item_id] = max(ts, self.seen.pop(item_id, ts))
        evicted = len(self.seen) > max_seen
        while len(self.seen) > max_seen:
            self.seen.popitem(last=False)
        self.recent = [r for r in self.recent if r[0] != item_id][-(max_recent - 1):] + [(item_id, kind)]
        return evicted

    # --- serialisation: a flat mapping of bytes, one Redis hash per user
    def to_mapping(self) -> dict[str, bytes]:
        iv = self.interests
        return {
            "v": iv.vectors.tobytes(),
            "m": iv.mass.tobytes(),
            "ts": repr(iv.ts).encode(),
            "seen": orjson.dumps(list(self.seen.items())),
            "recent": orjson.dumps(self.recent),
            "pending": orjson.dumps(self.pending),
            "n": str(self.n_events).encode(),
            "eids": orjson.dumps(list(self.event_ids.items())),
            "pos": orjson.dumps(sorted(self.positions.items())),
            "budget": orjson.dumps(None if self.count_budget is None else [self.count_budget, self.budget_ts]),
            "scenes": orjson.dumps([[name, sv.ts, sv.mass.tolist()] for name, sv in self.scenes.items()]),
            "scene_v": b"".join(sv.vectors.tobytes() for sv in self.scenes.values()),
            "shown": orjson.dumps(None if self.shown is None else {
                "items": self.shown.item_ids, "scene": self.shown.scene, "ts": self.shown.ts,
                "version": self.shown.model_version, "sample": self.shown.sample_ids, "pool": self.shown.pool}),
            "shown_x": b"" if self.shown is None else np.vstack(
                [self.shown.features, self.shown.sample_features]).astype(np.float32).tobytes(),
        }

    @classmethod
    def from_mapping(cls, user_id: str, mapping: Mapping[bytes | str, bytes], dim: int,
                     half_lives: Sequence[float]) -> UserState:
        """Rebuild a state; an empty mapping gives a new user. Half-lives must match the stored ones."""
        iv = InterestVector(dim, half_lives)
        state = cls(user_id, iv)
        if not mapping:
            return state
        m = {(k.decode() if isinstance(k, bytes) else k): v for k, v in mapping.items()}
        vectors = np.frombuffer(m["v"], dtype=np.float32)
        if vectors.size != iv.vectors.size:
            raise ValueError(f"stored interest state of {user_id!r} has another shape "
                             f"({vectors.size} floats, expected {iv.vectors.size})")
        iv.vectors = vectors.reshape(iv.vectors.shape).copy()
        iv.mass = np.frombuffer(m["m"], dtype=np.float64).copy()
        iv.ts = float(m["ts"])
        state.seen = OrderedDict((k, float(t)) for k, t in orjson.loads(m["seen"]))
        state.recent = [tuple(r) for r in orjson.loads(m["recent"])]
        state.pending = [tuple(p) for p in orjson.loads(m["pending"])]
        state.n_events = int(m["n"])
        ids = orjson.loads(m.get("eids", b"[]"))
        state.event_ids = {i: "" for i in ids} if ids and isinstance(ids[0], str) else dict(ids)
        positions = orjson.loads(m.get("pos", b"[]")) or []
        if positions and not isinstance(positions[0], list):  # stored before re-keying: one [partition, offset]
            positions = [positions]
        state.positions = {int(p): int(o) for p, o in positions}
        budget = orjson.loads(m.get("budget", b"null"))
        if budget is not None:
            state.count_budget, state.budget_ts = float(budget[0]), float(budget[1])
        scene_vectors = np.frombuffer(m.get("scene_v", b""), dtype=np.float32).reshape(-1, dim)
        for row, (name, ts, mass) in enumerate(orjson.loads(m.get("scenes", b"[]"))):
            sv = InterestVector(dim, half_lives[-1:])
            sv.vectors, sv.mass, sv.ts = scene_vectors[row:row + 1].copy(), np.array(mass), float(ts)
            state.scenes[name] = sv
        shown = orjson.loads(m.get("shown", b"null"))
        if shown is not None:
            n = len(shown["items"])
            rows = np.frombuffer(m["shown_x"], dtype=np.float32)
            rows = rows.reshape(n + len(shown["sample"]), -1) if rows.size else rows.reshape(0, 0)
            state.shown = Impressions(shown["items"], rows[:n].copy(), shown["scene"], shown["ts"],
                                      shown["version"], shown["sample"], rows[n:].copy(), shown["pool"])
        return state
