"""streamrec's Faust app: topics and agents in the order data flows through them.

Run it with ``streamrec worker``. Settings come from the environment (see
:mod:`stream.settings`); the agents only route: the work is in
:class:`stream.processor.StreamProcessor` and, below it, ``model/``. Each
worker serves its Prometheus metrics (:mod:`stream.metrics`) when
``STREAMREC_METRICS_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from stream import metrics
from stream.faustapp import as_message, make_app, raw_topic, retrying, send_all, serve_metrics
from stream.processor import StreamProcessor
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger("streamrec")
settings = Settings.from_env()
app = make_app(settings, settings.app_id)

items = raw_topic(app, settings.items_topic, settings.partitions)
events = raw_topic(app, settings.events_topic, settings.partitions)
rekeyed = raw_topic(app, settings.rekeyed_topic, settings.partitions)  # co-partitioned with events
recommendations = raw_topic(app, settings.recommendations_topic, settings.partitions)
dead_letters = raw_topic(app, settings.dlq_topic, settings.partitions)
feedback = raw_topic(app, settings.feedback_topic, 1)
forget_requests = raw_topic(app, settings.forget_topic, settings.partitions)
# Sends wait for the broker's acks and dead-letter what it refuses; steps retry while a dependency is down.
send = functools.partial(send_all, settings, dead_letters)
retry = functools.partial(retrying, settings)

_processor: StreamProcessor | None = None
_processor_lock = asyncio.Lock()


async def processor() -> StreamProcessor:
    """The worker's processor, built once (loading the encoder takes seconds, off the event loop)."""
    global _processor
    async with _processor_lock:
        if _processor is None:
            _processor = await asyncio.to_thread(build_processor, settings)
            metrics.health.ready()
    return _processor


def build_processor(settings: Settings) -> StreamProcessor:
    from model.encoder import MicroBatcher, TextEncoder  # torch import: only in workers

    encoder = TextEncoder(device=settings.encoder_device)
    batcher = MicroBatcher(encoder.encode, settings.encoder_batch_for(encoder.device), settings.encoder_wait_s,
                           on_batch=metrics.EncoderMeter(encoder))
    log.info("encoder on %s (%s)", encoder.device, encoder.dtype)
    metrics.encoder_info(model="all-MiniLM-L6-v2", device=encoder.device,
                         dtype=str(encoder.dtype).removeprefix("torch."))
    store = RedisStore(settings.redis_url, settings.redis_prefix, on_round_trip=metrics.observe_redis,
                       user_ttl_s=settings.user_ttl_s)
    processor = StreamProcessor(settings, store, batcher.encode_async, encoder.dim)
    metrics.model_version(processor.model_version)
    return processor


@app.task
async def metrics_endpoint():
    serve_metrics(settings)


@app.agent(items)
async def on_items(stream):
    """Catalogue updates → text encoded in batches → vectors in Redis and the local index."""
    proc = await processor()
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        dead = await retry(proc.handle_items, [as_message(e) for e in batch])
        await send((dead_letters, dead))


@app.agent(events)
async def on_events(stream):
    """Behaviour events → user state updated → one recommendation each, or the DLQ (or on to their owner)."""
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        await answer(batch, rekey=True)


@app.agent(rekeyed)
async def on_rekeyed(stream):
    """Events forwarded here, to their user's owner, by the worker their message key led to."""
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        await answer(batch, rekey=False)


async def answer(batch, rekey: bool) -> None:
    """Handle one micro-batch of events and send all it produced (its offsets move only after that)."""
    out = await retry((await processor()).handle_events, [as_message(e, forwarded=not rekey) for e in batch], rekey)
    await send((dead_letters, out.dead_letters), (recommendations, out.recommendations), (feedback, out.feedback),
               (rekeyed, out.forwards))
    metrics.recommendations_sent((r.event_ts, r.ingest_ts) for r in out.recommendations)


@app.agent(forget_requests)
async def on_forget(stream):
    """User deletion requests → every per-user key deleted → a tombstone (null) on recommendations."""
    proc = await processor()
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        tombstones, dead = await retry(proc.forget_users, [as_message(e) for e in batch])
        await send((dead_letters, dead), (recommendations, tombstones))


@app.timer(settings.item_sync_interval_s)
async def sync_replicas():
    """Keep this worker's item index, popularity and ranker in step with what others wrote."""
    await retry((await processor()).sync)


@app.timer(settings.lag_interval_s)
async def export_lag():
    """Consumer lag per assigned partition, for Prometheus."""
    metrics.observe_consumer_lag(app.consumer)
