"""streamrec's trainer: feedback in, ranker snapshots out. Run it with ``streamrec trainer``.

Workers label every list they showed with what the user did next and send the
labels to ``feedback``, with the event as a next-item example. That topic has
one partition, so the consumer group hands it to exactly one trainer, which
learns every example in order (the ranker from the lists, the item space from
the examples: :mod:`stream.learning`) and, every ``snapshot_interval_s``,
publishes them: to Redis, where every worker's sync timer picks them up (hot
swap), and the ranker also to the compacted ``model.snapshots`` topic for anyone
else. A trainer that starts (or takes over) resumes from the last snapshots in
Redis.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from concurrent.futures import ThreadPoolExecutor

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
_model_thread = ThreadPoolExecutor(1, thread_name_prefix="streamrec-trainer")


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
    return await _in_model_thread(lambda: trainer().learn(messages))


@app.timer(settings.snapshot_interval_s)
async def publish_snapshot():
    """Every snapshot interval: the ranker to Redis (workers hot-swap it) and to the snapshots topic."""
    data = await retry(_snapshot)
    if data is not None:
        await send((snapshots, [Outgoing(b"ranker", data)]))
        log.info("published ranker version %d", trainer().ranker.version)


async def _snapshot():
    return await _in_model_thread(lambda: trainer().snapshot())


async def _in_model_thread(work):
    """Learning (a training round of the item space takes a while) and snapshots run on one thread of their
    own, in order: the event loop keeps polling Kafka and serving /metrics meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_model_thread, work)
