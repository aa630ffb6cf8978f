"""streamrec's trainer: feedback in, ranker snapshots out. Run it with ``streamrec trainer``.

Workers label every list they showed with what the user did next and send the
labels to ``feedback``. That topic has one partition, so the consumer group
hands it to exactly one trainer, which learns every example in order and,
every ``snapshot_interval_s``, publishes the ranker: to Redis, where every
worker's sync timer picks it up (hot swap), and to the compacted
``model.snapshots`` topic for anyone else. A trainer that starts (or takes
over) resumes from the last snapshot in Redis.
"""

from __future__ import annotations

import logging

from model.features import initial_ranker
from model.ranker import OnlineRanker
from stream import metrics
from stream.codec import Message, Outgoing, decode_all, decode_feedback
from stream.faustapp import as_message, make_app, raw_topic, retrying, send_all, serve_metrics
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger("streamrec.trainer")


class Trainer:
    """Learns labelled impressions into one :class:`model.ranker.OnlineRanker` and snapshots it."""

    def __init__(self, settings: Settings, store: RedisStore):
        self.settings = settings
        self.store = store
        fresh = initial_ranker(settings.model)
        snapshot = store.load_snapshot()
        self.ranker = (OnlineRanker.from_bytes(snapshot, learning_rate=settings.model.learning_rate)
                       if snapshot else fresh)
        if self.ranker.features != fresh.features:
            log.warning("stored snapshot has other features %s: starting afresh", self.ranker.features)
            self.ranker = fresh
        self.published = self.ranker.version
        metrics.model_version(self.ranker.version)
        log.info("trainer starts from ranker version %d", self.ranker.version)

    def learn(self, messages: list[Message]) -> list[Outgoing]:
        """Learn every valid record; returns dead letters for the others."""
        n_features = len(self.ranker.features)
        decoded = decode_all(messages, lambda payload: decode_feedback(payload, n_features),
                             self.settings.feedback_topic)
        for reason in decoded.reasons:
            metrics.dead_lettered("feedback", reason)
        for (X, y), _ in decoded.values:
            if len(y):
                self.ranker.learn_rows(X, y)
                metrics.examples_learned(len(y))
        metrics.model_version(self.ranker.version)
        return decoded.dead

    def snapshot(self) -> bytes | None:
        """Publish the ranker to Redis if it learned since the last snapshot; returns what was published."""
        if self.ranker.version == self.published:
            return None
        data = self.ranker.to_bytes()
        self.store.save_snapshot(self.ranker.version, data)
        self.published = self.ranker.version
        return data


settings = Settings.from_env()
app = make_app(settings, f"{settings.app_id}-trainer")
feedback = raw_topic(app, settings.feedback_topic, 1)
snapshots = raw_topic(app, settings.snapshots_topic, 1)
dead_letters = raw_topic(app, settings.dlq_topic, settings.partitions)
_trainer: Trainer | None = None


def trainer() -> Trainer:
    global _trainer
    if _trainer is None:
        _trainer = Trainer(settings, RedisStore(settings.redis_url, settings.redis_prefix,
                                                on_round_trip=metrics.observe_redis))
        metrics.health.ready()
    return _trainer


@app.task
async def metrics_endpoint():
    serve_metrics(settings)


@app.agent(feedback)
async def on_feedback(stream):
    """Labelled impressions → the ranker learns them, in order."""
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        dead = await retrying(_learn, [as_message(e) for e in batch])
        await send_all((dead_letters, dead))


async def _learn(messages):
    return trainer().learn(messages)


@app.timer(settings.snapshot_interval_s)
async def publish_snapshot():
    """Every snapshot interval: the ranker to Redis (workers hot-swap it) and to the snapshots topic."""
    data = await retrying(_snapshot)
    if data is not None:
        await send_all((snapshots, [Outgoing(b"ranker", data)]))
        log.info("published ranker version %d", trainer().ranker.version)


async def _snapshot():
    return trainer().snapshot()
