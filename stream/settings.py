"""All runtime settings in one typed place, read from the environment.

Every variable is ``STREAMREC_<FIELD NAME IN UPPER CASE>``; for example
``STREAMREC_BROKER=kafka://kafka:9092`` or ``STREAMREC_REDIS_URL=redis://redis:6379/0``.
The model's knobs are the fields of :class:`model.config.RecommenderConfig`,
nested here as :attr:`Settings.model` and named the same way
(``STREAMREC_TOP_K``, ``STREAMREC_HALF_LIVES_S=300,86400``,
``STREAMREC_TYPE_WEIGHTS=view=1,click=2,cart=3,purchase=5``): one source for
every knob, whoever reads it (worker, trainer, replay, benches).
Precedence: environment, then the file written by ``streamrec stack up``
(so a worker started after it finds the local stack), then the defaults below.

>>> s = Settings.from_env({"STREAMREC_TOP_K": "5", "STREAMREC_BROKER": "kafka://h:1"})
>>> s.model.top_k, s.broker, s.events_topic
(5, 'kafka://h:1', 'events')
>>> s.replace(partitions=1, negative_samples=5).model.negative_samples
5
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.config import RecommenderConfig

#: Where ``streamrec stack up`` records the addresses of the servers it started.
STACK_FILE_ENV = "STREAMREC_STACK_FILE"
DEFAULT_STACK_FILE = Path(".streamrec") / "stack.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    # --- where things are
    broker: str = "kafka://127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    app_id: str = "streamrec"
    data_dir: str = ".streamrec/worker"
    # --- topics and their partition counts (created up front: see stream/topics.py)
    events_topic: str = "events"
    #: Events that arrived keyed by something other than their user_id, forwarded keyed by it
    #: (a repartition topic, as Kafka Streams' ``through``): each user's state has one owner.
    rekeyed_topic: str = "events.rekeyed"
    items_topic: str = "items"
    recommendations_topic: str = "recommendations"
    dlq_topic: str = "events.dlq"
    #: User deletion requests (``streamrec forget``); keyed by user like ``events``.
    forget_topic: str = "users.forget"
    #: Labelled impressions for the trainer; one partition, so exactly one trainer learns.
    feedback_topic: str = "feedback"
    #: Ranker snapshots (compacted), for subscribers; workers read them from Redis.
    snapshots_topic: str = "model.snapshots"
    #: How often the trainer publishes the ranker it learned (Monolith: fresher is better).
    snapshot_interval_s: float = 10.0
    partitions: int = 4
    # --- micro-batching in the agents
    batch_max: int = 256
    batch_wait_s: float = 0.02
    # --- the model: every knob of RecommenderConfig, each its own STREAMREC_<FIELD> variable
    model: RecommenderConfig = dataclasses.field(default_factory=RecommenderConfig)
    #: An event cannot happen after it reaches the worker: its time may be at most this far ahead of the
    #: worker's clock (clock sync between hosts), later ones are clamped to it.
    max_clock_skew_s: float = 1.0
    # --- size limits (a record over the producer's max request size would stop its whole batch)
    #: Largest event, item or forget request accepted; larger ones are dead-lettered as ``oversized``.
    max_payload_bytes: int = 65536
    #: Largest feedback record the trainer accepts (a list's labelled features).
    max_feedback_bytes: int = 1_048_576
    #: A dead letter never exceeds this: it keeps the bad payload's size, sha256 and as much of it as fits.
    dead_letter_max_bytes: int = 16384
    #: Largest record a worker sends; an answer over it is dead-lettered (``answer_too_large``) instead.
    #: Well under the producer's max request size (1 MiB by default in aiokafka and Kafka).
    max_message_bytes: int = 524_288
    #: Most bytes the worker's producer packs into one record batch per partition (aiokafka's
    #: ``max_batch_size``, 16 KiB by default: 6 answers). A micro-batch's answers then go out as one
    #: or two batches instead of ~40: fewer requests and acks on any broker, and the local broker
    #: (Tansu, memory storage) does work per stored batch on every fetch, so with 16 KiB batches a
    #: client reading one partition of ~100k answers fell to a few records/s (bench/README.md).
    #: Kept under aiokafka's 1 MB max request size; a larger record still goes, alone.
    producer_batch_bytes: int = 524_288
    # --- the encoder
    encoder_device: str = "auto"
    #: Most texts per forward pass; 0 picks by device: 16 on CPU (the best fixed batch there,
    #: see bench/README.md), 128 on CUDA.
    encoder_batch_max: int = 0
    encoder_wait_s: float = 0.005
    # --- state
    redis_prefix: str = "sr:"
    #: A user's state expires after this long without events (0 = never): bounded Redis memory.
    user_ttl_s: float = 90 * 86400.0
    item_sync_interval_s: float = 1.0
    #: How old a worker's copy of a shared item-item row may be before it is fetched again.
    pair_cache_ttl_s: float = 1.0
    #: Item-item counts shared by all workers in Redis; off: each worker's own, in memory, lost on
    #: restart (what streamrec did before; kept as the baseline of the scale-out replay).
    shared_pairs: bool = True
    # --- consumer group behaviour (short timeouts make joins fast on small brokers)
    session_timeout_s: float = 6.0
    #: How long a fetch may wait for records (see stream/transport.py for why it is short).
    fetch_max_wait_ms: int = 10
    # --- operations (see stream/metrics.py)
    #: Port of this worker's Prometheus endpoint, ``/metrics``; 0 turns it off.
    metrics_port: int = 0
    #: Address the endpoint binds: loopback for local runs and tests, ``0.0.0.0`` in containers.
    metrics_addr: str = "127.0.0.1"
    #: Seconds between samples of the consumer lag.
    lag_interval_s: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        stack_file = Path(environ.get(STACK_FILE_ENV, DEFAULT_STACK_FILE))
        if stack_file.is_file():
            stack = json.loads(stack_file.read_text())
            values.update({k: stack[k] for k in ("broker", "redis_url") if k in stack})
        defaults = cls()
        for name, default in _knobs(defaults):
            raw = environ.get(_variable(name))
            if raw is not None:
                values[name] = _parse(name, raw, default)
        return defaults.replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, where a model knob (``top_k``...) goes to :attr:`model`."""
        model_fields = {f.name for f in dataclasses.fields(RecommenderConfig)}
        model = {k: v for k, v in changes.items() if k in model_fields}
        own = {k: v for k, v in changes.items() if k not in model_fields}
        if model:
            own["model"] = dataclasses.replace(own.get("model", self.model), **model)
        return dataclasses.replace(self, **own)

    def encoder_batch_for(self, device: str) -> int:
        """Most texts per forward pass on ``device``: ``encoder_batch_max``, or by device when 0."""
        return self.encoder_batch_max or (128 if device.startswith("cuda") else 16)

    @property
    def bootstrap_servers(self) -> str:
        """The broker address without the ``kafka://`` scheme, for kafka-python."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    def env(self) -> dict[str, str]:
        """These settings as environment variables, to hand to a child process."""
        return {_variable(name): _format(value) for name, value in _knobs(self)}


def _knobs(settings: Settings) -> list[tuple[str, Any]]:
    """Every (name, value), the model's knobs flattened in beside the others (their names never clash)."""
    own = [(f.name, getattr(settings, f.name)) for f in dataclasses.fields(settings) if f.name != "model"]
    model = [(f.name, getattr(settings.model, f.name)) for f in dataclasses.fields(settings.model)]
    return own + model


def _variable(name: str) -> str:
    return f"STREAMREC_{name.upper()}"


def _format(value: Any) -> str:
    """A value as :func:`_parse` reads it back."""
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _parse(name: str, raw: str, default: Any) -> Any:
    """Parse one environment value to the type of its default."""
    try:
        if isinstance(default, Mapping):  # "view=1,click=2,..."
            pairs = (part.split("=", 1) for part in raw.split(",") if part.strip())
            return {k.strip(): float(v) for k, v in pairs}
        if isinstance(default, tuple):
            parts = [part.strip() for part in raw.split(",") if part.strip()]
            return tuple(parts) if default and isinstance(default[0], str) else tuple(float(p) for p in parts)
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return type(default)(raw)
    except ValueError as exc:
        raise ValueError(f"{_variable(name)}={raw!r}: {exc}") from None
