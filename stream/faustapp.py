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
from aiokafka.errors import KafkaConnectionError, KafkaError

from model.schema import InvalidInput
from stream import metrics, transport
from stream.codec import Message, Outgoing, dead_letter, origin_of
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
        producer_max_batch_size=settings.producer_batch_bytes,
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


def as_message(event: faust.EventT, forwarded: bool = False) -> Message:
    """The record as the processor sees it; ``forwarded``: it came from events.rekeyed, whose origin header counts.

    Only streamrec's own forwards may say where an event came from: an app that set the
    header on ``events`` could otherwise pick the position its events are fenced by.
    """
    m = event.message
    return Message(m.key, m.value, m.partition, m.offset, m.timestamp, origin_of(m.headers) if forwarded else None)


async def send_all(settings: Settings, dead_letters: faust.TopicT | None,
                   *outputs: tuple[faust.TopicT, list[Outgoing]]) -> None:
    """Send the records of every ``(topic, records)``, then wait for all the broker's acks at once.

    Returns once every record is delivered, or dead-lettered: the caller commits
    the batch's offsets only then. Waiting once for every topic of a batch, rather
    than topic by topic, costs one broker round trip, not three. A record the
    broker refuses for good (too large, say) must not stop the others or be lost
    silently: it is replaced by a dead letter naming it (``unsendable``) on
    ``dead_letters``; records that failed for a transient reason are sent again,
    with backoff, until they go through.
    """
    pending = [(topic, record) for topic, records in outputs for record in records]
    delay, loop = 0.1, object()
    try:
        while pending:
            sent, failed = [], []
            for topic, record in pending:
                try:
                    sent.append((topic, record, await topic.send(key=record.key, value=record.value,
                                                                 headers=list(record.headers) or None)))
                except Exception as exc:  # raised before the record left: judged below like an ack's error
                    failed.append((topic, record, exc))
            acks = await asyncio.gather(*(future for _, _, future in sent), return_exceptions=True)
            failed += [(t, r, ack) for (t, r, _), ack in zip(sent, acks) if isinstance(ack, BaseException)]
            pending = []
            for topic, record, exc in failed:
                if _transient(exc):
                    pending.append((topic, record))
                elif dead_letters is not None and topic is not dead_letters:
                    error = InvalidInput("unsendable", detail=f"{type(exc).__name__}: {exc}")
                    log.error("dead-lettering a record the broker refused for %s: %s", topic.get_topic_name(), exc)
                    metrics.dead_lettered("output", "unsendable")
                    dead = dead_letter(Message(record.key, record.value), error, topic.get_topic_name(),
                                       settings.dead_letter_max_bytes)
                    pending.append((dead_letters, dead))
                else:
                    log.error("dropping a dead letter the broker refused (%s): %s", type(exc).__name__, exc)
            if any(_transient(exc) for _, _, exc in failed):
                metrics.health.failing(loop, "kafka")
                log.warning("Kafka at %s did not take %d record(s) (%s); sending them again in %.1f s",
                            settings.broker, len(pending), failed[0][2], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
    finally:
        metrics.health.recovered(loop)


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT) and getattr(exc, "retriable", True) is not False \
        or isinstance(exc, KafkaConnectionError)


async def retrying(settings: Settings, step, *args):
    """``await step(*args)`` until no transient error stops it; the worker reports itself down meanwhile."""
    delay, loop = 0.1, object()
    try:
        while True:
            try:
                return await step(*args)
            except TRANSIENT as exc:
                dependency = metrics.dependency_of(exc)
                metrics.health.failing(loop, dependency)
                log.warning("%s unavailable (%s); retrying the batch in %.1f s", describe(settings, dependency),
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
    finally:
        metrics.health.recovered(loop)


def describe(settings: Settings, dependency: str) -> str:
    """The dependency and where it is, as a log line names it: ``Redis at redis://...``."""
    where = {"redis": f"Redis at {settings.redis_url}", "kafka": f"Kafka at {settings.broker}"}
    return where.get(dependency, "a dependency")


def serve_metrics(settings: Settings) -> None:
    """This process's /metrics for Prometheus (off when STREAMREC_METRICS_PORT is 0)."""
    try:
        metrics.serve(settings.metrics_port, settings.metrics_addr)
    except OSError as exc:  # e.g. two local processes on one port: keep working, Prometheus sees it down
        log.error("no /metrics on %s:%s: %s", settings.metrics_addr, settings.metrics_port, exc)
