"""streamrec's Faust app: topics and agents in the order data flows through them.

Run it with ``streamrec worker``. Settings come from the environment (see
:mod:`stream.settings`); the agents only route: the work is in
:class:`stream.processor.StreamProcessor` and, below it, ``model/``. Each
worker serves its Prometheus metrics (:mod:`stream.metrics`) when
``STREAMREC_METRICS_PORT`` is set.
"""

from __future__ import annotations

import asyncio
import logging

import faust
import redis
from aiokafka.errors import KafkaError

from stream import metrics, transport
from stream.processor import Message, Outgoing, StreamProcessor
from stream.settings import Settings
from stream.store import RedisStore

log = logging.getLogger("streamrec")
settings = Settings.from_env()

app = faust.App(
    settings.app_id,
    broker=settings.broker,
    datadir=settings.data_dir,
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=max(settings.session_timeout_s / 6, 0.5),
    consumer_auto_offset_reset="earliest",
    topic_partitions=settings.partitions,
    web_enabled=False,
)
transport.install(app, settings.fetch_max_wait_ms)
# Faust's sensors go to our registry: its own /metrics page would need the web server, which is off.
metrics.bridge_faust(app)


def raw_topic(name: str, **options) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=settings.partitions, **options)


items = raw_topic(settings.items_topic)
events = raw_topic(settings.events_topic)
recommendations = raw_topic(settings.recommendations_topic)
dead_letters = raw_topic(settings.dlq_topic)
forget_requests = raw_topic(settings.forget_topic)

# Transient failures of a dependency: retry the same batch (offsets do not move meanwhile).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, KafkaError, ConnectionError)

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
    batcher = MicroBatcher(encoder.encode, settings.encoder_batch_max, settings.encoder_wait_s,
                           on_batch=metrics.EncoderMeter(encoder))
    log.info("encoder on %s (%s)", encoder.device, encoder.dtype)
    metrics.encoder_info(model="all-MiniLM-L6-v2", device=encoder.device,
                         dtype=str(encoder.dtype).removeprefix("torch."))
    store = RedisStore(settings.redis_url, settings.redis_prefix, on_round_trip=metrics.observe_redis)
    processor = StreamProcessor(settings, store, batcher.encode_async, encoder.dim)
    metrics.model_version(processor.model_version)
    return processor


def as_message(event: faust.EventT) -> Message:
    m = event.message
    return Message(m.key, m.value, m.partition, m.offset, m.timestamp)


async def send_all(topic: faust.TopicT, records: list[Outgoing]) -> None:
    """Send and wait for the broker's acks, so offsets are committed only for delivered output."""
    futures = [await topic.send(key=r.key, value=r.value) for r in records]
    await asyncio.gather(*futures)


async def retrying(step, *args):
    """``await step(*args)`` until no transient error stops it; the worker reports itself down meanwhile."""
    delay, loop = 0.1, object()
    try:
        while True:
            try:
                return await step(*args)
            except TRANSIENT as exc:
                metrics.health.failing(loop, metrics.dependency_of(exc))
                log.warning("dependency unavailable (%r); retrying the batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
    finally:
        metrics.health.recovered(loop)


@app.task
async def serve_metrics():
    """This worker's /metrics for Prometheus (off when STREAMREC_METRICS_PORT is 0)."""
    try:
        metrics.serve(settings.metrics_port, settings.metrics_addr)
    except OSError as exc:  # e.g. two local workers on one port: keep processing, Prometheus sees it down
        log.error("no /metrics on %s:%s: %s", settings.metrics_addr, settings.metrics_port, exc)


@app.agent(items)
async def on_items(stream):
    """Catalogue updates → text encoded in batches → vectors in Redis and the local index."""
    proc = await processor()
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        dead = await retrying(proc.handle_items, [as_message(e) for e in batch])
        await send_all(dead_letters, dead)


@app.agent(events)
async def on_events(stream):
    """Behaviour events → user state updated → one recommendation each, or the DLQ."""
    proc = await processor()
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        recs, dead = await retrying(proc.handle_events, [as_message(e) for e in batch])
        await send_all(dead_letters, dead)
        await send_all(recommendations, recs)
        metrics.recommendations_sent((r.event_ts, r.ingest_ts) for r in recs)


@app.agent(forget_requests)
async def on_forget(stream):
    """User deletion requests → every per-user key deleted → a tombstone (null) on recommendations."""
    proc = await processor()
    async for batch in stream.take_events(settings.batch_max, within=settings.batch_wait_s):
        tombstones, dead = await retrying(proc.forget_users, [as_message(e) for e in batch])
        await send_all(dead_letters, dead)
        await send_all(recommendations, tombstones)


@app.timer(settings.item_sync_interval_s)
async def sync_replicas():
    """Keep this worker's item index and popularity in step with what other workers wrote."""
    await retrying((await processor()).sync)


@app.timer(settings.lag_interval_s)
async def export_lag():
    """Consumer lag per assigned partition, for Prometheus."""
    metrics.observe_consumer_lag(app.consumer)
