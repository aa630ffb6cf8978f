"""streamrec's Prometheus metrics: every definition, in one registry, and the small API that feeds them.

Each worker serves :data:`REGISTRY` at ``http://STREAMREC_METRICS_ADDR:STREAMREC_METRICS_PORT/metrics``
(:func:`serve`; port 0 = off). Names follow Prometheus conventions: a
``streamrec_`` prefix, counters end in ``_total``, durations are in seconds.
The registry also holds the process collector (``process_resident_memory_bytes``,
``process_cpu_seconds_total``...) and, once :func:`bridge_faust` ran in a worker,
Faust's own sensors as ``streamrec_faust_*`` (Faust's names and units).

Callers use the functions below rather than the metric objects, so the
labels stay bounded and consistent: event types, dead-letter reasons and
Redis operations come from code, never from payloads.

>>> batch_taken("events", 3)
>>> events_processed("click", "ok", 2)
>>> REGISTRY.get_sample_value("streamrec_events_total", {"type": "click", "outcome": "ok"}) >= 2
True
>>> HitRateWindow(size=2).observe(True)
1.0
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector

from model.schema import EVENT_TYPES

log = logging.getLogger(__name__)

#: The one registry every streamrec metric lives in (not prometheus_client's global default,
#: so that nothing another library registers there leaks into /metrics unasked).
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: 1 ms … 10 s: the hot path answers in milliseconds; seconds mean something is wrong.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: 100 µs … 2.5 s: a pipelined loopback round trip takes well under a millisecond.
ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)
#: Powers of two up to the largest micro-batch an agent or the encoder takes.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

#: The ``type`` label of rejected events (valid ones carry their model.schema.EVENT_TYPES).
INVALID = "invalid"
#: The dependencies a retry loop can be waiting on (``streamrec_dependency_up``).
DEPENDENCIES = ("redis", "kafka", "other")
#: Labelled impressions kept for the online hit rate.
HIT_RATE_WINDOW = 1000

# --- what flows through
EVENTS = Counter("streamrec_events",
                 "Behaviour events consumed, by event type and outcome: ok (applied), dlq, duplicate (a client's "
                 "retry, answered again), redelivered (after a crash, answered again).",
                 ["type", "outcome"], registry=REGISTRY)
EVENTS_REKEYED = Counter("streamrec_events_rekeyed",
                         "Events that arrived keyed by something other than their user (no_key | empty_key | "
                         "wrong_key | wrong_partition), forwarded to the re-keyed topic for their user's owner.",
                         ["reason"], registry=REGISTRY)
EVENTS_CLAMPED = Counter("streamrec_events_clamped",
                         "Events whose time was ahead of the worker's clock by more than the allowed skew, "
                         "clamped to it.", registry=REGISTRY)
ITEMS = Counter("streamrec_items", "Catalogue records consumed, by outcome (ok | dlq).",
                ["outcome"], registry=REGISTRY)
DEAD_LETTERS = Counter("streamrec_dead_letters",
                       "Records sent to the dead-letter topic, by source (events | items | forget) and reason.",
                       ["source", "reason"], registry=REGISTRY)
RECOMMENDATIONS = Counter("streamrec_recommendations", "Recommendation lists sent and acked by the broker.",
                          registry=REGISTRY)
USERS_FORGOTTEN = Counter("streamrec_users_forgotten",
                          "Users whose state was deleted on request (a tombstone was sent for each).",
                          registry=REGISTRY)
BATCH_SIZE = Histogram("streamrec_batch_size", "Records per micro-batch an agent took from its topic.",
                       ["agent"], buckets=BATCH_BUCKETS, registry=REGISTRY)

# --- how fast
EVENT_LATENCY = Histogram(
    "streamrec_event_to_recommendation_seconds",
    "From the event's own timestamp (ts) to its recommendation acked by the broker. "
    "Includes the app's clock skew and publishing delay; replayed history lands in +Inf.",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
INGEST_LATENCY = Histogram(
    "streamrec_ingest_to_recommendation_seconds",
    "From the event message's broker timestamp to its recommendation acked by the broker.",
    buckets=LATENCY_BUCKETS, registry=REGISTRY)
REDIS_SECONDS = Histogram("streamrec_redis_round_trip_seconds",
                          "Duration of one state-store call (one pipelined round trip), by operation.",
                          ["operation"], buckets=ROUND_TRIP_BUCKETS, registry=REGISTRY)

# --- the shared item-item counts
PAIR_INCREMENTS = Counter("streamrec_pair_increments",
                          "Pair increments (co-visitation, co-purchase) written to the shared counts.",
                          registry=REGISTRY)
PAIR_ROWS_READ = Counter("streamrec_pair_rows_read",
                         "Item-item rows a batch's lists read, by where from (cache: fetched within the TTL).",
                         ["source"], registry=REGISTRY)
PAIR_ROWS_AGE = Histogram("streamrec_pair_rows_age_seconds",
                          "Per batch, how long ago the oldest shared item-item row its lists read was fetched: "
                          "other workers' increments are at most this stale.",
                          buckets=(0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0), registry=REGISTRY)

# --- the encoder
ENCODER = Info("streamrec_encoder", "The text encoder: model, device and dtype.", registry=REGISTRY)
ENCODER_BATCH_SIZE = Histogram("streamrec_encoder_batch_size", "Texts per micro-batch sent to the encoder.",
                               buckets=BATCH_BUCKETS, registry=REGISTRY)
ENCODER_BATCH_SECONDS = Histogram("streamrec_encoder_batch_seconds", "Seconds the encoder took per micro-batch.",
                                  buckets=LATENCY_BUCKETS, registry=REGISTRY)
ENCODER_CACHE_HITS = Counter("streamrec_encoder_cache_hits", "Texts whose vector came from the encoder's cache.",
                             registry=REGISTRY)
ENCODER_CACHE_MISSES = Counter("streamrec_encoder_cache_misses", "Texts the encoder had to run the model for.",
                               registry=REGISTRY)

# --- the ranker
MODEL_VERSION = Gauge("streamrec_model_version", "Version of the ranker snapshot serving recommendations.",
                      registry=REGISTRY)
EXAMPLES_LEARNED = Counter("streamrec_ranker_examples_learned", "Labelled examples the ranker learned from.",
                           registry=REGISTRY)
ITEM_SPACE_VERSION = Gauge("streamrec_item_space_version",
                           "Version of the learned item representations serving (worker) or last trained (trainer).",
                           registry=REGISTRY)
SEQUENCE_EXAMPLES = Counter("streamrec_item_space_examples",
                            "Next-item examples the trainer took in for the learned representations.",
                            registry=REGISTRY)
FEEDBACK = Counter("streamrec_feedback",
                   "Labelled impressions: was the item the user took next in the top-k shown (hit | miss).",
                   ["outcome"], registry=REGISTRY)
ONLINE_HIT_RATE = Gauge("streamrec_online_hit_rate",
                        f"HR@k over this worker's last {HIT_RATE_WINDOW} labelled impressions (NaN before the first).",
                        registry=REGISTRY)

# --- health
CONSUMER_LAG = Gauge("streamrec_consumer_lag",
                     "Messages between the partition's high watermark and this worker's committed offset.",
                     ["topic", "partition"], registry=REGISTRY)
UP = Gauge("streamrec_up", "1 while the worker processes records; 0 while it starts or a dependency fails.",
           registry=REGISTRY)
DEPENDENCY_UP = Gauge("streamrec_dependency_up", "0 while a retry loop is failing on this dependency.",
                      ["dependency"], registry=REGISTRY)
DEPENDENCY_RETRIES = Counter("streamrec_dependency_retries", "Batches retried after a transient failure.",
                             ["dependency"], registry=REGISTRY)

# Every label value that can occur starts at 0, so rate() and ratios work from the first scrape.
for _type in EVENT_TYPES:
    EVENTS.labels(type=_type, outcome="ok")
EVENTS.labels(type=INVALID, outcome="dlq")
for _outcome in ("ok", "dlq"):
    ITEMS.labels(outcome=_outcome)
for _outcome in ("hit", "miss"):
    FEEDBACK.labels(outcome=_outcome)
for _dependency in DEPENDENCIES:
    DEPENDENCY_UP.labels(dependency=_dependency).set(1)
    DEPENDENCY_RETRIES.labels(dependency=_dependency)
ONLINE_HIT_RATE.set(math.nan)


# --------------------------------------------------------------------------- serving


def serve(port: int, addr: str = "127.0.0.1") -> Any:
    """Serve :data:`REGISTRY` at ``http://addr:port/metrics`` from a daemon thread.

    Parameters
    ----------
    port
        TCP port; 0 turns the endpoint off.
    addr
        Address to bind: loopback for local runs, ``0.0.0.0`` in a container.

    Returns
    -------
    wsgiref.simple_server.WSGIServer or None
        The server (``shutdown()`` stops it), or None when off.
    """
    if not port:
        return None
    server, _ = start_http_server(port, addr=addr, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return server


def bridge_faust(app: Any) -> None:
    """Export Faust's own sensors (rebalances, commit and send latency, ...) as ``streamrec_faust_*``.

    Faust would serve them on its web server, which streamrec turns off
    (``web_enabled=False``); registering them in :data:`REGISTRY` puts them on
    :func:`serve`'s endpoint instead. Their names and units (milliseconds)
    are Faust's; dashboards and alerts use the ``streamrec_*`` metrics. Call
    once per process.
    """
    from faust.sensors.prometheus import setup_prometheus_sensors

    setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="streamrec_faust")


# --------------------------------------------------------------------------- what flows through


def batch_taken(agent: str, size: int) -> None:
    """An agent took a micro-batch of ``size`` records."""
    BATCH_SIZE.labels(agent=agent).observe(size)


def events_processed(kind: str, outcome: str, n: int = 1) -> None:
    """``n`` valid events of type ``kind`` with ``outcome`` (ok | duplicate | redelivered)."""
    EVENTS.labels(type=kind if kind in EVENT_TYPES else INVALID, outcome=outcome).inc(n)


def events_rekeyed(reason: str) -> None:
    """An event forwarded to its user's owner, for ``reason`` (no_key | empty_key | wrong_key | wrong_partition)."""
    EVENTS_REKEYED.labels(reason=reason).inc()


def events_clamped() -> None:
    EVENTS_CLAMPED.inc()


def items_processed(n: int) -> None:
    ITEMS.labels(outcome="ok").inc(n)


def dead_lettered(source: str, reason: str) -> None:
    """A record from ``source`` (events | items | forget) went to the DLQ for ``reason``."""
    DEAD_LETTERS.labels(source=source, reason=reason).inc()
    if source == "events":
        EVENTS.labels(type=INVALID, outcome="dlq").inc()
    elif source == "items":
        ITEMS.labels(outcome="dlq").inc()


def recommendations_sent(timestamps: Iterable[tuple[float | None, float | None]], now: float | None = None) -> None:
    """Recommendations the broker acked: ``(event_ts, ingest_ts)`` of each one's event.

    Negative spans (an app's clock ahead of ours) count as 0 rather than
    corrupting the histogram's sum.
    """
    now = time.time() if now is None else now
    n = 0
    for event_ts, ingest_ts in timestamps:
        n += 1
        if event_ts is not None:
            EVENT_LATENCY.observe(max(now - event_ts, 0.0))
        if ingest_ts is not None:
            INGEST_LATENCY.observe(max(now - ingest_ts, 0.0))
    RECOMMENDATIONS.inc(n)


def users_forgotten(n: int) -> None:
    USERS_FORGOTTEN.inc(n)


def pair_increments(n: int) -> None:
    PAIR_INCREMENTS.inc(n)


def pair_rows_read(n: int, fetched: int, oldest_s: float) -> None:
    """A batch read ``n`` shared rows, ``fetched`` of them from Redis, the oldest fetched ``oldest_s`` ago."""
    PAIR_ROWS_READ.labels(source="redis").inc(fetched)
    PAIR_ROWS_READ.labels(source="cache").inc(n - fetched)
    PAIR_ROWS_AGE.observe(max(oldest_s, 0.0))


def observe_redis(operation: str, seconds: float) -> None:
    """One state-store call took ``seconds`` (:class:`stream.store.RedisStore`'s ``on_round_trip``)."""
    REDIS_SECONDS.labels(operation=operation).observe(seconds)


# --------------------------------------------------------------------------- the encoder


def encoder_info(*, model: str, device: str, dtype: str) -> None:
    ENCODER.info({"model": model, "device": device, "dtype": dtype})


class EncoderMeter:
    """``MicroBatcher(on_batch=...)`` callback: batch size and duration, and the encoder's cache counters.

    The encoder counts cache hits and misses in plain integers; each batch adds
    what they grew by since the previous one.

    Parameters
    ----------
    encoder
        Anything with ``cache_hits`` and ``cache_misses`` (a :class:`model.encoder.TextEncoder`), or None.

    Examples
    --------
    >>> class Encoder:
    ...     cache_hits, cache_misses = 0, 0
    >>> def misses():
    ...     return REGISTRY.get_sample_value("streamrec_encoder_cache_misses_total")
    >>> encoder, before = Encoder(), misses()
    >>> meter = EncoderMeter(encoder)
    >>> encoder.cache_hits, encoder.cache_misses = 1, 3
    >>> meter(4, 0.02)
    >>> misses() - before
    3.0
    """

    def __init__(self, encoder: Any = None):
        self.encoder = encoder
        self._hits = getattr(encoder, "cache_hits", 0)
        self._misses = getattr(encoder, "cache_misses", 0)

    def __call__(self, size: int, seconds: float) -> None:
        ENCODER_BATCH_SIZE.observe(size)
        ENCODER_BATCH_SECONDS.observe(seconds)
        if self.encoder is None:
            return
        hits, misses = self.encoder.cache_hits, self.encoder.cache_misses
        # max(): a counter must never go down, even if the encoder's own counters were reset.
        ENCODER_CACHE_HITS.inc(max(hits - self._hits, 0))
        ENCODER_CACHE_MISSES.inc(max(misses - self._misses, 0))
        self._hits, self._misses = hits, misses


# --------------------------------------------------------------------------- the ranker


class HitRateWindow:
    """HR@k over a sliding window: the share of the last ``size`` impressions whose taken item was shown.

    Thread-safe: the model thread and the event loop may both report.

    Parameters
    ----------
    size
        How many of the latest labelled impressions count.

    Examples
    --------
    >>> window = HitRateWindow(size=4)
    >>> window.rate
    nan
    >>> for hit in (True, False, True, True, False):
    ...     rate = window.observe(hit)
    >>> rate, len(window)                     # the first True has slid out
    (0.5, 4)
    """

    def __init__(self, size: int = HIT_RATE_WINDOW):
        if size < 1:
            raise ValueError("size must be at least 1")
        self._hits: deque[bool] = deque(maxlen=size)
        self._count = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hits)

    @property
    def rate(self) -> float:
        """Hits / impressions in the window; NaN while it is empty."""
        with self._lock:
            return self._count / len(self._hits) if self._hits else math.nan

    def observe(self, hit: bool) -> float:
        """Add one impression; returns the window's hit rate."""
        with self._lock:
            if len(self._hits) == self._hits.maxlen:
                self._count -= self._hits[0]
            self._hits.append(bool(hit))
            self._count += bool(hit)
            return self._count / len(self._hits)


#: This worker's window behind ``streamrec_online_hit_rate``.
online_hit_rate = HitRateWindow(HIT_RATE_WINDOW)


def observe_feedback(hit: bool) -> float:
    """One labelled impression: was the item the user took next in the top-k shown?

    Counts it in ``streamrec_feedback_total`` (what alerts aggregate across
    workers) and in this worker's sliding window (``streamrec_online_hit_rate``).

    Returns
    -------
    float
        The window's hit rate after this impression.
    """
    FEEDBACK.labels(outcome="hit" if hit else "miss").inc()
    rate = online_hit_rate.observe(hit)
    ONLINE_HIT_RATE.set(rate)
    return rate


def examples_learned(n: int) -> None:
    EXAMPLES_LEARNED.inc(n)


def model_version(version: int) -> None:
    MODEL_VERSION.set(version)


def item_space_version(version: int) -> None:
    ITEM_SPACE_VERSION.set(version)


def sequence_examples(n: int) -> None:
    SEQUENCE_EXAMPLES.inc(n)


# --------------------------------------------------------------------------- health


def dependency_of(exc: BaseException) -> str:
    """Which dependency a transient error came from, by the library that raised it.

    >>> import redis
    >>> dependency_of(redis.ConnectionError()), dependency_of(ConnectionResetError())
    ('redis', 'other')
    """
    module = type(exc).__module__
    if module.startswith("redis"):
        return "redis"
    if module.startswith(("aiokafka", "kafka")):
        return "kafka"
    return "other"


class Health:
    """Drives ``streamrec_up`` and ``streamrec_dependency_up`` from the worker's retry loops.

    The worker is up once it is ready and no retry loop is failing. Each loop
    reports under its own token, so one loop recovering does not hide another
    still failing.

    Examples
    --------
    >>> def up(dependency=None):
    ...     if dependency is None:
    ...         return REGISTRY.get_sample_value("streamrec_up")
    ...     return REGISTRY.get_sample_value("streamrec_dependency_up", {"dependency": dependency})
    >>> health = Health()
    >>> health.ready(); up()
    1.0
    >>> loop = object()
    >>> health.failing(loop, "redis"); up(), up("redis"), up("kafka")
    (0.0, 0.0, 1.0)
    >>> health.recovered(loop); up(), up("redis")
    (1.0, 1.0)
    """

    def __init__(self) -> None:
        self._ready = False
        self._failing: dict[Hashable, str] = {}

    def ready(self) -> None:
        self._ready = True
        self._export()

    def failing(self, loop: Hashable, dependency: str) -> None:
        """``loop`` failed on ``dependency`` and will retry."""
        DEPENDENCY_RETRIES.labels(dependency=dependency).inc()
        if self._failing.get(loop) != dependency:
            self._failing[loop] = dependency
            self._export()

    def recovered(self, loop: Hashable) -> None:
        """``loop`` is done (succeeded or cancelled)."""
        if self._failing.pop(loop, None) is not None:
            self._export()

    def _export(self) -> None:
        down = set(self._failing.values())
        for dependency in DEPENDENCIES:
            DEPENDENCY_UP.labels(dependency=dependency).set(dependency not in down)
        UP.set(self._ready and not down)


#: The worker's health.
health = Health()

_lag_series: set[tuple[str, str]] = set()


def observe_consumer_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """Set ``streamrec_consumer_lag`` for each partition assigned to a Faust consumer.

    Lag is the high watermark (next offset the broker will write, from the
    latest fetch response) minus the committed offset (next offset this group
    will read: Faust's last commit, or the group's offset at assignment). Both
    come from the consumer's own bookkeeping, so this costs no broker round
    trip. A partition where either is unknown yet gets no sample rather than a
    guess; partitions no longer assigned lose theirs.

    Returns
    -------
    dict
        ``(topic, partition) -> lag`` as exported.
    """
    try:
        assigned = list(consumer.assignment())
    except Exception:  # noqa: BLE001  not started, or between rebalances: nothing to say
        assigned = []
    # Faust has no public accessor for committed offsets; this dict is what it commits from.
    committed_offsets = getattr(consumer, "_committed_offset", {})
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001  revoked since assignment() was read
            continue
        committed = committed_offsets.get(tp)
        if highwater is None or committed is None:
            continue
        lags[(tp.topic, tp.partition)] = max(int(highwater) - int(committed), 0)
    exported = {(topic, str(partition)) for topic, partition in lags}
    for labels in _lag_series - exported:
        CONSUMER_LAG.remove(*labels)
    _lag_series.clear()
    _lag_series.update(exported)
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
    return lags
