"""The adapter between Kafka messages and the model: decode, load state, call ``model/``, store, emit.

It holds no recommender logic of its own: the Faust agents hand it micro-batches
of raw messages and send what it returns. Model and store calls run on one
dedicated thread, so the event loop stays free for heartbeats and fetching
while a batch is computed, and the model's in-process state never sees two
threads at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model.cooccurrence import PairCount
from model.ranker import OnlineRanker
from model.recommender import Recommender, Request, waves
from model.representations import ItemSpace
from model.schema import Event, InvalidInput, Item, parse_event, parse_item
from stream import metrics
from stream.codec import (
    Decoded,
    Message,
    Outgoing,
    dead_letter,
    decode_all,
    decode_forget,
    encode_feedback,
    encode_recommendation,
    forwarded,
    partition_of,
)
from stream.pairs import SharedPairs
from stream.settings import Settings
from stream.store import ITEM_SPACE, RedisStore, text_digest

log = logging.getLogger(__name__)

#: How many of the most popular items each worker re-reads from the shared store per sync.
POPULARITY_SYNC_TOP = 2000
#: How many items' shared interaction counts each worker re-reads per sync, in turn through
#: its catalogue (all of it on the first sync): 100k items are read afresh every 10 s.
COUNT_SYNC_CHUNK = 10_000


@dataclasses.dataclass
class EventsOutput:
    """What a batch of events produced, by the topic it goes to."""

    recommendations: list[Outgoing]
    dead_letters: list[Outgoing]
    feedback: list[Outgoing]
    #: Events that arrived with another key than their user's, for the re-keyed topic.
    forwards: list[Outgoing]


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
        #: Where the next sync's read of shared counts starts in the index (None: read them all).
        self._count_cursor: int | None = None
        #: Per partition, the highest offset folded into the in-process counts (co-visitation,
        #: bundles, popularity): a batch retried after a failed state write must not count twice.
        self._counted: dict[int, int] = {}
        #: The item-item rows every worker shares (None: this worker's own counts only).
        self.pairs = (SharedPairs(store, self.recommender, settings.pair_cache_ttl_s)
                      if settings.shared_pairs else None)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="streamrec-model")

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def close(self) -> None:
        self._thread.shutdown(wait=True)

    # --- items
    async def handle_items(self, messages: Sequence[Message]) -> list[Outgoing]:
        """Upsert and delete items (a null value is a deletion); returns dead letters.

        Like the compacted topic, the last record of an item in the batch wins. Only items
        whose encoder text changed are encoded (one batched call); every other field
        change is stored as it is.
        """
        parse = functools.partial(parse_item, max_bytes=self.settings.max_payload_bytes)
        latest: dict[str, Item | None] = {}
        dead, reasons = [], []
        for message in messages:
            if message.value is None and message.key:  # a tombstone: the item is deleted
                item_id: str | None = message.key.decode(errors="replace")
                item = None
            else:
                decoded = self._decode([message], parse, self.settings.items_topic)
                dead += decoded.dead
                reasons += decoded.reasons
                item_id, item = (decoded.values[0][0].item_id, decoded.values[0][0]) if decoded.values else (None, None)
            if item_id is not None:
                latest.pop(item_id, None)  # re-inserted: the dict keeps the batch's last word, in order
                latest[item_id] = item
        items = [item for item in latest.values() if item is not None]
        gone = [item_id for item_id, item in latest.items() if item is None]
        stale = await self._run(self._store_items, items, gone)
        if stale:
            vectors = await self.encode([item.text_for_encoder for item in stale])
            await self._run(self._index_items, stale, vectors)
        self._tally("items", len(messages), reasons)
        self.outcomes["items:ok"] += len(items)
        self.outcomes["items:deleted"] += len(gone)
        metrics.items_processed(len(items) + len(gone))
        return dead

    def _store_items(self, items: list[Item], deleted: list[str]) -> list[Item]:
        """Store deletions and the changes that need no encoding; returns the items to encode."""
        if deleted:
            self.store.delete_items(deleted)
            self.recommender.remove_items(deleted)
        digests = self.store.item_digests([i.item_id for i in items])
        unchanged = [i for i, d in zip(items, digests) if d == text_digest(i.text_for_encoder)]
        if unchanged:  # a new price, category...: stored, and indexed, without encoding again
            self.store.save_items(unchanged)
            self.recommender.index.update(unchanged)
        return [i for i, d in zip(items, digests) if d != text_digest(i.text_for_encoder)]

    def _index_items(self, items: list[Item], vectors: np.ndarray) -> None:
        self.store.save_items(items, vectors)
        self.recommender.add_items(items, vectors)

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
        rec = self.recommender
        rec.set_popularity(self.store.top_popularity(POPULARITY_SYNC_TOP))
        segments = self.store.top_segment_popularity(list(rec.segment_popularity), POPULARITY_SYNC_TOP)
        for segment, log_scores in segments.items():
            rec.set_popularity(log_scores, segment)
        self._sync_counts()
        snapshot = self.store.load_snapshot(newer_than=self.model_version)
        if snapshot is not None:
            self.hot_swap(OnlineRanker.from_bytes(snapshot))
        if rec.item_space is not None:
            space = self.store.load_snapshot(newer_than=rec.item_space.version, name=ITEM_SPACE)
            if space is not None:
                self.swap_item_space(ItemSpace.from_bytes(space))
        return added

    def _sync_counts(self) -> None:
        """Read the next chunk of every worker's interaction counts (the whole catalogue the first time).

        A worker adds its own events' counts at once, and they are in the shared counts
        as soon as its batch is written, so overwriting with the shared value never loses
        or repeats one: it adds the other workers' (and, after a restart, the past's).
        """
        ids = self.recommender.index.ids
        start = self._count_cursor or 0
        stop = len(ids) if self._count_cursor is None else start + COUNT_SYNC_CHUNK
        for at in range(start, min(stop, len(ids)), COUNT_SYNC_CHUNK):
            self.recommender.popularity.set_counts(
                self.store.item_counts([i for i in ids[at: at + COUNT_SYNC_CHUNK] if i]))
        self._count_cursor = stop if stop < len(ids) else 0

    def _sync_items(self) -> int:
        """Pull items encoded by any worker since the last sync into the local index."""
        items, vectors, deleted, self._item_cursor = self.store.items_after(self._item_cursor, self.recommender.dim)
        if items:
            self.recommender.add_items(items, vectors)
        if deleted:
            self.recommender.remove_items(deleted)
        if self.pairs is not None:
            self.pairs.forget([*deleted, *(item.item_id for item in items)])
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

    def swap_item_space(self, space: ItemSpace) -> None:
        """Serve the trainer's learned representations from the next batch on (rows embedded as lists read them)."""
        current = self.recommender.item_space
        assert current is not None
        if space.shape != current.shape:
            log.error("ignoring item space %d: shaped %s, this worker's %s", space.version, space.shape,
                      current.shape)
            return
        self.recommender.set_item_space(space)
        metrics.item_space_version(space.version)
        log.info("serving item space version %d (%d items learned)", space.version, len(space.ids))

    # --- events
    async def handle_events(self, messages: Sequence[Message], rekey: bool = False) -> EventsOutput:
        """One answer per valid event of the batch (or a dead letter), the feedback, the events to forward.

        With ``rekey`` (the ``events`` topic), an event that did not arrive keyed by its
        user on that user's partition is not applied here: it is forwarded to the
        re-keyed topic, keyed by its user, so that its user's owner applies it.
        """
        return await self._run(self._handle_events, messages, rekey)

    def _handle_events(self, messages: Sequence[Message], rekey: bool) -> EventsOutput:
        received = time.time()
        topic = self.settings.events_topic if rekey else self.settings.rekeyed_topic
        decoded = self._decode(messages, functools.partial(parse_event, now=received,
                                                           max_bytes=self.settings.max_payload_bytes), topic)
        out = EventsOutput([], decoded.dead, [], [])
        owned = []
        for event, message in decoded.values:
            misplaced = self._misplaced(event, message) if rekey else None
            if misplaced:
                out.forwards.append(forwarded(message, event.user_id))
                metrics.events_rekeyed(misplaced)
            else:
                owned.append((self._clamped(event, received), message))
        if owned:
            self._recommend(owned, received, out, decoded)
        self._tally("events", len(messages), decoded.reasons)
        return out

    def _misplaced(self, event: Event, message: Message) -> str | None:
        """Why this worker is not the owner of the event's user (None: it is)."""
        key = event.user_id.encode()
        if message.key != key:
            return "no_key" if message.key is None else "empty_key" if not message.key else "wrong_key"
        if message.partition != partition_of(key, self.settings.partitions):
            return "wrong_partition"  # keyed right, partitioned by another hash (e.g. a legacy partitioner)
        return None

    def _clamped(self, event: Event, received: float) -> Event:
        """The event with its time no later than this worker's clock plus the allowed skew.

        A producer whose clock runs hours fast would otherwise have its events dominate the
        user's short-term interest over later, correct ones (times a day or more ahead are
        rejected outright as ``bad_timestamp``: seconds sent as milliseconds, a zero clock).
        """
        latest = received + self.settings.max_clock_skew_s
        if event.ts <= latest:
            return event
        metrics.events_clamped()
        return dataclasses.replace(event, ts=latest)

    def _recommend(self, events: list[tuple[Event, Message]], received: float, out: EventsOutput,
                   decoded: Decoded) -> None:
        """Observe each event into its user's state, in order, and answer each with a recommendation.

        Observing also labels the list the user was shown last: those labels go to the trainer.
        """
        if any(e.item_id not in self.recommender.index for e, _ in events):
            self._sync_items()  # a worker elsewhere may have encoded it since our last sync
        rec = self.recommender
        states = self.store.load_users((e.user_id for e, _ in events), rec.dim, rec.config.half_lives_s)
        if self.pairs is not None:  # the rows the batch's lists may read, as all workers counted them
            self.pairs.refresh(item for event, _ in events
                               for item in (event.item_id, *rec.seed_items(states[event.user_id])))
        popularity: dict[str, float] = {}
        counts: Counter[str] = Counter()
        segment_popularity: dict[str, dict[str, float]] = {}
        pairs: list[PairCount] = []
        results: dict[int, tuple[Event, Message, list]] = {}  # by position in the batch: answers go out in order
        outcomes: Counter = Counter()
        # The high-water marks as the batch found them: waves apply events out of offset order.
        counted = dict(self._counted)
        # Waves in which each user appears once: a user's events stay in order (each wave's
        # lists see the user's earlier events), and each wave is recommended for at once.
        for wave in waves([event.user_id for event, _ in events]):
            requests, answered = [], []
            applying, observing = [], []  # the wave's new events: positions, and (state, event, count)
            for n in wave:
                event, message = events[n]
                state = states[event.user_id]
                partition, offset = message.position
                if state.is_duplicate(event.event_id) and not state.is_retry(event.event_id, event.fingerprint):
                    error = InvalidInput("duplicate_event_id", "event_id", "already used by another event of this user")
                    decoded.dead.append(dead_letter(message, error, decoded.topic, self.settings.dead_letter_max_bytes))
                    decoded.reasons.append(error.reason)
                    continue
                if state.applied(partition, offset) or state.is_duplicate(event.event_id):
                    # Redelivered after a crash (offsets are committed after the state is written),
                    # or a client's retry: answer it again, never apply it twice.
                    outcomes[event.type, "redelivered" if state.applied(partition, offset) else "duplicate"] += 1
                    requests.append(Request(state, event.ts, event.scene, record=False))
                    answered.append(n)
                    continue
                applying.append(n)
                observing.append((state, event, offset < 0 or offset > counted.get(partition, -1)))
            # In one call, so the wave's lists are labelled in one batch.
            for n, observation in zip(applying, rec.observe_many(observing)):
                event, message = events[n]
                state = states[event.user_id]
                partition, offset = message.position
                outcomes[event.type, "ok"] += 1
                if offset >= 0:
                    state.mark_applied(partition, offset)
                    self._counted[partition] = max(self._counted.get(partition, -1), offset)
                if observation.feedback is not None or observation.sequence is not None:
                    out.feedback.append(Outgoing(event.user_id.encode(),
                                                 encode_feedback(event, observation.feedback, observation.sequence)))
                if observation.feedback is not None:
                    metrics.observe_feedback(observation.feedback.hit)
                if observation.popularity is not None:
                    item_id, increment = observation.popularity
                    popularity[item_id] = float(np.logaddexp2(popularity.get(item_id, -np.inf), increment))
                    counts[item_id] += 1
                    for segment in observation.segments:
                        within = segment_popularity.setdefault(segment, {})
                        within[item_id] = float(np.logaddexp2(within.get(item_id, -np.inf), increment))
                if self.pairs is not None:  # otherwise the counts stay this worker's own
                    pairs += observation.pairs
                requests.append(Request(state, event.ts, event.scene))
                answered.append(n)
            for n, items in zip(answered, rec.recommend_many(requests)):
                results[n] = (*events[n], items)
        # One MULTI/EXEC: all of the batch or none, so the increments are counted once, like the states.
        self.store.save_users(states.values(), popularity, pairs, rec.config.max_neighbours, segment_popularity,
                              counts)
        metrics.pair_increments(len(pairs))
        for (kind, outcome), n in outcomes.items():
            metrics.events_processed(kind, outcome, n)
            self.outcomes[f"events:{outcome}"] += n
        sent = time.time()
        titles, version = rec.index.items, self.model_version
        for event, message, items in (results[n] for n in sorted(results)):
            answer = Outgoing(event.user_id.encode(),
                              encode_recommendation(event, items, titles, model_version=version,
                                                    ingest_ts=message.timestamp or received, received_ts=received,
                                                    sent_ts=sent),
                              event_ts=event.ts, ingest_ts=message.timestamp or received)
            if self._sendable(answer, message, decoded):
                out.recommendations.append(answer)

    def _decode(self, messages: Sequence[Message], decode, topic: str) -> Decoded:
        return decode_all(messages, decode, topic, self.settings.dead_letter_max_bytes)

    def _sendable(self, answer: Outgoing, message: Message, decoded: Decoded) -> bool:
        """Whether ``answer`` is within the size the producer can send; if not, its event is dead-lettered."""
        if len(answer.value or b"") + len(answer.key or b"") <= self.settings.max_message_bytes:
            return True
        size, limit = len(answer.value or b""), self.settings.max_message_bytes
        error = InvalidInput("answer_too_large", detail=f"{size} bytes > {limit} (STREAMREC_MAX_MESSAGE_BYTES)")
        decoded.dead.append(dead_letter(message, error, decoded.topic, self.settings.dead_letter_max_bytes))
        decoded.reasons.append(error.reason)
        return False

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
        decoded = self._decode(messages, functools.partial(decode_forget, max_bytes=self.settings.max_payload_bytes),
                               self.settings.forget_topic)
        users = dict.fromkeys(user_id for user_id, _ in decoded.values)
        for user_id in users:
            self.store.forget_user(user_id)
        if users:
            log.info("forgot %d user(s)", len(users))  # not who: the log would be a trace of them
        self._tally("forget", len(messages), decoded.reasons)
        metrics.users_forgotten(len(users))
        return [Outgoing(user_id.encode(), None) for user_id in users], decoded.dead
