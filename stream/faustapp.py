"""What streamrec's two Faust apps (the worker and the trainer) are built from.

One place for the app settings, raw-bytes topics, sends that wait for the
broker's acks, and the retry loop that turns a dependency outage into
backpressure instead of loss.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust
import redis
from aiokafka.errors import KafkaError

from stream import metrics, transport
from stream.codec import Message, Outgoing
from stream.settings import Settings

log = logging.getLogger("streamrec")

# Transient failures of a dependency: retry the same batch (offsets do not move meanwhile).
TRANSIENT = (redis.ConnectionError, redis.TimeoutError, KafkaError, ConnectionError)


def make_app(settings: Settings, app_id: str) -> faust.App:
    datadir = Path(settings.data_dir) / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(
        app_id,
        broker=settings.broker,
        datadir=str(datadir),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(settings.session_timeout_s / 6, 0.5),
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        web_enabled=False,
    )
    transport.install(app, settings.fetch_max_wait_ms)
    global _bridged
    if not _bridged:  # one registry per process: a second app's sensors would clash by name
        # Faust's sensors go to our registry: its own /metrics page would need the web server, which is off.
        metrics.bridge_faust(app)
        _bridged = True
    return app


_bridged = False


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


def as_message(event: faust.EventT) -> Message:
    m = event.message
    return Message(m.key, m.value, m.partition, m.offset, m.timestamp)


async def send_all(*outputs: tuple[faust.TopicT, list[Outgoing]]) -> None:
    """Send the records of every ``(topic, records)``, then wait for all the broker's acks at once.

    Offsets are committed only for delivered output. Waiting once for every topic
    of a batch, rather than topic by topic, costs one broker round trip, not three.
    """
    futures = [await topic.send(key=r.key, value=r.value) for topic, records in outputs for r in records]
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


def serve_metrics(settings: Settings) -> None:
    """This process's /metrics for Prometheus (off when STREAMREC_METRICS_PORT is 0)."""
    try:
        metrics.serve(settings.metrics_port, settings.metrics_addr)
    except OSError as exc:  # e.g. two local processes on one port: keep working, Prometheus sees it down
        log.error("no /metrics on %s:%s: %s", settings.metrics_addr, settings.metrics_port, exc)
