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

import functools
import logging

from stream import metrics
from stream.codec import Outgoing
from stream.faustapp import as_message, make_app, raw_topic, retrying, send_all, serve_metrics
from stream.learning import Trainer
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger("streamrec.trainer")
settings = Settings.from_env()
app = make_app(settings, f"{settings.app_id}-trainer")
feedback = raw_topic(app, settings.feedback_topic, 1)
snapshots = raw_topic(app, settings.snapshots_topic, 1)
dead_letters = raw_topic(app, settings.dlq_topic, settings.partitions)
send = functools.partial(send_all, settings, dead_letters)
retry = functools.partial(retrying, settings)
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
        dead = await retry(_learn, [as_message(e) for e in batch])
        await send((dead_letters, dead))


async def _learn(messages):
    return trainer().learn(messages)


@app.timer(settings.snapshot_interval_s)
async def publish_snapshot():
    """Every snapshot interval: the ranker to Redis (workers hot-swap it) and to the snapshots topic."""
    data = await retry(_snapshot)
    if data is not None:
        await send((snapshots, [Outgoing(b"ranker", data)]))
        log.info("published ranker version %d", trainer().ranker.version)


async def _snapshot():
    return trainer().snapshot()
