"""The adapter between Kafka messages and the model: decode, load state, call ``model/``, store, emit.

It holds no recommender logic of its own: the Faust agents hand it micro-batches
of raw messages and send what it returns. Model and store calls run on one
dedicated thread, so the event loop stays free for heartbeats and fetching
while a batch is computed, and the model's in-process state never sees two
threads at once.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import orjson

from model.ranker import OnlineRanker
from model.recommender import Feedback, Recommender
from model.schema import Event, InvalidInput, Item, Recommended, decode_json, parse_event, parse_item
from stream import metrics
from stream.forget import parse_request
from stream.settings import Settings
from stream.store import RedisStore, text_digest

log = logging.getLogger(__name__)

#: How many of the most popular items each worker re-reads from the shared store per sync.
POPULARITY_SYNC_TOP = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A raw record as consumed, with where it came from."""

    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = -1
    timestamp: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to send. A recommendation carries its event's timestamps, for the latency metrics."""

    key: bytes
    #: None is a tombstone.
    value: bytes | None
    event_ts: float | None = None
    ingest_ts: float | None = None


def dead_letter(message: Message, error: InvalidInput, source_topic: str) -> Outgoing:
    """The DLQ record: the reason, and the original payload byte for byte."""
    raw = message.value or b""
    try:
        payload, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        payload, encoding = base64.b64encode(raw).decode(), "base64"
    body = {
        "reason": error.reason,
        "field": error.field,
        "error": str(error),
        "topic": source_topic,
        "partition": message.partition,
        "offset": message.offset,
        "payload": payload,
        "payload_encoding": encoding,
        "dead_lettered_ts": time.time(),
    }
    return Outgoing(message.key or b"", orjson.dumps(body))


@dataclasses.dataclass(frozen=True, slots=True)
class Label:
    """One event's labelled impressions, as sent to the trainer on the feedback topic."""

    hit: bool
    outgoing: Outgoing

    @classmethod
    def of(cls, event: Event, feedback: Feedback) -> Label:
        body = {"user_id": event.user_id, "event_id": event.event_id, "hit": feedback.hit,
                "model_version": feedback.model_version, "X": feedback.X.tolist(), "y": feedback.y.tolist()}
        return cls(feedback.hit, Outgoing(event.user_id.encode(), orjson.dumps(body)))


def parse_label(payload: bytes, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The (X, y) of a feedback record, checked against the ranker's feature count."""
    body = decode_json(payload)
    try:
        X = np.asarray(body["X"], dtype=np.float64).reshape(-1, n_features)
        y = np.asarray(body["y"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("bad_feedback", detail=str(exc)[:200]) from None
    if len(X) != len(y) or not np.isfinite(X).all() or not set(np.unique(y)) <= {0.0, 1.0}:
        raise InvalidInput("bad_feedback", detail="X and y disagree, or values are not finite / not 0-1")
    return X, y


class StreamProcessor:
    """Turns micro-batches of events into recommendations, and of items into indexed vectors.

    Parameters
    ----------
    settings
        Runtime settings.
    store
        The Redis state store.
    encode
        Awaitable text encoder (a :class:`model.encoder.MicroBatcher`'s ``encode_async``).
    dim
        Encoder output size.
    """

    def __init__(self, settings: Settings, store: RedisStore,
                 encode: Callable[[list[str]], Awaitable[np.ndarray]], dim: int):
        self.settings = settings
        self.store = store
        self.encode = encode
        self.recommender = Recommender(settings.model, dim)
        self.outcomes: Counter[str] = Counter()
        self._item_cursor: str | None = None
        #: Per partition, the highest offset folded into the in-process counts (co-visitation,
        #: bundles, popularity): a batch retried after a failed state write must not count twice.
        self._counted: dict[int, int] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="streamrec-model")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    # --- items
    async def handle_items(self, messages: Sequence[Message]) -> list[Outgoing]:
        """Validate, encode what is new or changed (one batched call), store; returns dead letters."""
        items, dead, reasons = [], [], []
        for message in messages:
            try:
                items.append(parse_item(message.value, max_bytes=self.settings.max_payload_bytes))
            except InvalidInput as err:
                dead.append(dead_letter(message, err, self.settings.items_topic))
                reasons.append(err.reason)
        latest = {item.item_id: item for item in items}  # compacted topic semantics: last one wins
        stale = await self._run(self._needs_encoding, list(latest.values()))
        if stale:
            vectors = await self.encode([item.text_for_encoder for item in stale])
            await self._run(self._index_items, stale, vectors)
        self._tally("items", len(messages), reasons)
        self.outcomes["items:ok"] += len(items)
        metrics.items_processed(len(items))
        return dead

    def _needs_encoding(self, items: list[Item]) -> list[Item]:
        digests = self.store.item_digests([i.item_id for i in items])
        return [i for i, d in zip(items, digests) if d != text_digest(i.text_for_encoder)]

    def _index_items(self, items: list[Item], vectors: np.ndarray) -> None:
        self.store.save_items(items, vectors)
        self.recommender.index.add(items, vectors)

    # --- syncing the in-process replicas with the shared store
    async def sync(self) -> int:
        return await self._run(self._sync)

    @property
    def model_version(self) -> int:
        """Version of the ranker serving recommendations."""
        return self.recommender.ranker.version

    def _sync(self) -> int:
        """Pull items encoded by any worker since the last sync, the shared popularity, a newer ranker."""
        added = self._sync_items()
        self.recommender.popularity.set_log(self.store.top_popularity(POPULARITY_SYNC_TOP))
        snapshot = self.store.load_snapshot(newer_than=self.model_version)
        if snapshot is not None:
            self.hot_swap(OnlineRanker.from_bytes(snapshot))
        return added

    def _sync_items(self) -> int:
        """Pull items encoded by any worker since the last sync into the local index."""
        items, vectors, self._item_cursor = self.store.items_after(self._item_cursor, self.recommender.dim)
        if items:
            self.recommender.index.add(items, vectors)
        return len(items)

    def hot_swap(self, ranker: OnlineRanker) -> None:
        """Serve ``ranker`` from the next batch on (batches run on this one thread: no lock needed)."""
        if ranker.features != self.recommender.features:
            log.error("ignoring ranker snapshot %d: features %s differ from this worker's %s",
                      ranker.version, ranker.features, self.recommender.features)
            return
        self.recommender.ranker = ranker
        metrics.model_version(ranker.version)
        log.info("serving ranker version %d (%d examples learned)", ranker.version, ranker.n_learned)

    # --- events
    async def handle_events(self, messages: Sequence[Message]) -> tuple[list[Outgoing], list[Outgoing], list[Outgoing]]:
        """Returns (recommendations, dead letters, labelled impressions), one recommendation per valid event."""
        return await self._run(self._handle_events, messages)

    def _handle_events(self, messages: Sequence[Message]) -> tuple[list[Outgoing], list[Outgoing], list[Outgoing]]:
        received = time.time()
        events: list[tuple[Event, Message]] = []
        dead: list[Outgoing] = []
        reasons: list[str] = []
        for message in messages:
            try:
                event = parse_event(message.value, now=received, max_bytes=self.settings.max_payload_bytes)
                events.append((event, message))
            except InvalidInput as err:
                dead.append(dead_letter(message, err, self.settings.events_topic))
                reasons.append(err.reason)
        out, labels = self._recommend(events, received) if events else ([], [])
        self._tally("events", len(messages), reasons)
        self.outcomes["events:ok"] += len(events)
        metrics.events_processed(event.type for event, _ in events)
        for label in labels:
            metrics.observe_feedback(label.hit)
        return out, dead, [label.outgoing for label in labels]

    def _recommend(self, events: list[tuple[Event, Message]], received: float) -> tuple[list[Outgoing], list[Label]]:
        """Observe each event into its user's state, in order, and answer each with a recommendation.

        Observing also labels the list the user was shown last: those labels go to the trainer.
        """
        if any(e.item_id not in self.recommender.index for e, _ in events):
            self._sync_items()  # a worker elsewhere may have encoded it since our last sync
        rec = self.recommender
        states = self.store.load_users((e.user_id for e, _ in events), rec.dim, rec.config.half_lives_s)
        popularity: dict[str, float] = {}
        results, labels = [], []
        for event, message in events:
            state = states[event.user_id]
            if state.applied(message.partition, message.offset) or state.is_duplicate(event.event_id):
                # Redelivered after a crash (offsets are committed after the state is written),
                # or a client's retry: answer it again, never apply it twice.
                self.outcomes["events:already_applied"] += 1
                recs = rec.recommend(state, now=event.ts, scene=event.scene, record=False)
                results.append((event, message, recs))
                continue
            counted = self._counted.get(message.partition, -1)
            feedback = rec.observe(state, event, count=message.offset < 0 or message.offset > counted)
            if message.offset >= 0:
                state.position = (message.partition, message.offset)
                self._counted[message.partition] = max(counted, message.offset)
            if feedback is not None:
                labels.append(Label.of(event, feedback))
            if rec.in_catalogue(event.item_id):  # the same items the model's own counts take
                increment = rec.popularity.log_increment(rec.weight(event), event.ts)
                popularity[event.item_id] = float(np.logaddexp2(popularity.get(event.item_id, -np.inf), increment))
            results.append((event, message, rec.recommend(state, now=event.ts, scene=event.scene)))
        self.store.save_users(states.values(), popularity)  # one MULTI/EXEC: all of the batch or none
        sent = time.time()
        return [Outgoing(event.user_id.encode(), self._recommendation(event, message, items, received, sent),
                         event_ts=event.ts, ingest_ts=message.timestamp or received)
                for event, message, items in results], labels

    def _tally(self, source: str, size: int, dead_reasons: list[str]) -> None:
        """Count a batch once it went through: one retried after a Redis failure counts once."""
        metrics.batch_taken(source, size)
        for reason in dead_reasons:
            self.outcomes[f"{source}:dlq:{reason}"] += 1
            metrics.dead_lettered(source, reason)

    # --- users asking to be forgotten
    async def forget_users(self, messages: Sequence[Message]) -> tuple[list[Outgoing], list[Outgoing]]:
        """Delete each named user's state; returns (tombstones for ``recommendations``, dead letters).

        Runs on the model thread like event batches, so a user's state is never
        deleted between the load and the save of a batch that holds their events.
        """
        return await self._run(self._forget_users, messages)

    def _forget_users(self, messages: Sequence[Message]) -> tuple[list[Outgoing], list[Outgoing]]:
        users: dict[str, None] = {}
        dead: list[Outgoing] = []
        reasons: list[str] = []
        for message in messages:
            try:
                users[parse_request(message.value, max_bytes=self.settings.max_payload_bytes)] = None
            except InvalidInput as err:
                dead.append(dead_letter(message, err, self.settings.forget_topic))
                reasons.append(err.reason)
        for user_id in users:
            self.store.forget_user(user_id)
        if users:
            log.info("forgot %d user(s)", len(users))  # not who: the log would be a trace of them
        self._tally("forget", len(messages), reasons)
        metrics.users_forgotten(len(users))
        return [Outgoing(user_id.encode(), None) for user_id in users], dead

    def _recommendation(self, event: Event, message: Message, items: list[Recommended],
                        received: float, sent: float) -> bytes:
        catalog = self.recommender.index.items
        return orjson.dumps({
            "user_id": event.user_id,
            "event_id": event.event_id,
            "scene": event.scene,
            "model_version": self.model_version,
            "event_ts": event.ts,
            "ingest_ts": message.timestamp or received,
            "received_ts": received,
            "sent_ts": sent,
            "items": [dict(r.to_dict(), title=catalog[r.item_id].title) for r in items],
        })
