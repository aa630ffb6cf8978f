"""The Kafka topics streamrec uses, created up front with explicit partition counts.

Why up front: brokers auto-create a missing topic on first use with *their*
default partition count (Tansu: 4), which need not match what the Faust tables
and the partitioning by user expect. So every topic is created explicitly, and
:func:`ensure_topics` refuses a topic that exists with another count.

Topics come from the :class:`~stream.settings.Settings` fields whose names end
in ``_topic`` — the four of today and whatever is added later (feedback, model
snapshots, ``users.forget``): a new ``*_topic`` field is created without
touching this module. Per-topic configs live in :data:`TOPIC_CONFIGS`; one-off
topics can be passed as ``extra``.

>>> from stream.settings import Settings
>>> for name, partitions, configs in topic_specs(Settings(partitions=3)):
...     print(name, partitions, configs)
events 3 {}
events.rekeyed 3 {}
items 3 {'cleanup.policy': 'compact'}
recommendations 3 {}
events.dlq 3 {}
users.forget 3 {}
feedback 1 {}
model.snapshots 1 {'cleanup.policy': 'compact'}
>>> [n for n, _, _ in topic_specs(Settings(), extra=[("audit", 2, {})])][-1]
'audit'
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TOPIC_CONFIGS", "TopicSpec", "client_timeouts", "ensure_topics", "topic_specs"]

#: (name, partitions, topic configs)
TopicSpec = tuple[str, int, dict[str, str]]

#: Topic configs by Settings field name. Topics not listed get the broker defaults.
TOPIC_CONFIGS: Mapping[str, Mapping[str, str]] = {
    # The item catalogue is a table keyed by item id: only the latest version
    # of each item matters, and compaction keeps it forever without growing.
    "items_topic": {"cleanup.policy": "compact"},
    # Only the newest snapshot of the ranker matters.
    "snapshots_topic": {"cleanup.policy": "compact"},
}

#: Partition counts that are part of the design, not a scaling knob.
TOPIC_PARTITIONS: Mapping[str, int] = {
    # One partition: the consumer group gives it to exactly one trainer, which
    # learns every example in order; another takes over if it dies.
    "feedback_topic": 1,
    "snapshots_topic": 1,
}

#: The order topics are listed in (the rest follow in field order).
_KNOWN = ("events_topic", "rekeyed_topic", "items_topic", "recommendations_topic", "dlq_topic")


def topic_specs(settings: Any, extra: Iterable[TopicSpec] = ()) -> list[TopicSpec]:
    """The topics to create for ``settings``.

    Parameters
    ----------
    settings : stream.settings.Settings
        Every field named ``*_topic`` is a topic, with ``settings.partitions``
        partitions (the DLQ too: it keeps the events' keys, so the same
        partitioning lets a replay keep per-user order).
    extra : iterable of (name, partitions, configs)
        More topics, appended as given.

    Returns
    -------
    list of (str, int, dict)
        ``(name, partitions, configs)``, without duplicate names.
    """
    fields = [f.name for f in dataclasses.fields(settings) if f.name.endswith("_topic")]
    ordered = [f for f in _KNOWN if f in fields] + [f for f in fields if f not in _KNOWN]
    specs: list[TopicSpec] = [
        (getattr(settings, f), TOPIC_PARTITIONS.get(f, int(settings.partitions)), dict(TOPIC_CONFIGS.get(f, {})))
        for f in ordered
    ]
    specs += [(name, int(partitions), dict(configs)) for name, partitions, configs in extra]
    seen: set[str] = set()
    out = []
    for spec in specs:
        if spec[0] not in seen:
            seen.add(spec[0])
            out.append(spec)
    return out


def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], timeout: float = 10.0) -> None:
    """Create the topics that don't exist yet and wait until the broker shows them all.

    Parameters
    ----------
    bootstrap_servers : str
        ``host:port[,host:port]`` (no ``kafka://``; see
        :attr:`stream.settings.Settings.bootstrap_servers`).
    specs : iterable of (name, partitions, configs)
        From :func:`topic_specs`. Replication factor is 1: the local stack
        has one broker; production topics are provisioned by ops.
    timeout : float
        Seconds to wait for the metadata to list every topic with its
        partition count.

    Raises
    ------
    ValueError
        A topic already exists with another partition count (recreate it, or
        change ``partitions``: re-partitioning would break per-key order).
    RuntimeError
        Creation failed, or the metadata did not converge in time.
    """
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    specs = list(specs)
    if not specs:
        return
    wanted = {name: partitions for name, partitions, _ in specs}
    deadline = time.monotonic() + timeout
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="streamrec-topics",
        **client_timeouts(KafkaAdminClient, int(max(timeout, 1.0) * 1000)),
    )
    try:
        result = admin.create_topics(
            {
                name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs}
                for name, partitions, configs in specs
            },
            timeout_ms=int(max(timeout, 1.0) * 1000),
            raise_errors=False,  # judge each topic: "already exists" is fine
        )
        existed = set()
        errors = []
        for topic in result["topics"]:
            code = topic["error_code"]
            if code == TopicAlreadyExistsError.errno:
                existed.add(topic["name"])
            elif code != 0:
                errors.append(f"{topic['name']}: error {code} {topic.get('error_message') or ''}".strip())
        if errors:
            raise RuntimeError("could not create topics: " + "; ".join(errors))

        seen: dict[str, int | None] = {}
        while True:
            seen = _partition_counts(admin, list(wanted))
            # A topic that was there before won't change its count by waiting.
            wrong = {n: seen[n] for n in existed if seen.get(n) not in (None, wanted[n])}
            if wrong:
                raise ValueError(
                    "topics exist with other partition counts: "
                    + ", ".join(f"{n} has {c}, want {wanted[n]}" for n, c in sorted(wrong.items()))
                )
            if all(seen.get(n) == p for n, p in wanted.items()):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        missing = {n: (seen.get(n), p) for n, p in wanted.items() if seen.get(n) != p}
        raise RuntimeError(
            f"topics not ready on {bootstrap_servers} after {timeout} s "
            f"(name: (seen, wanted) partitions): {missing}"
        )
    finally:
        admin.close()


def client_timeouts(client_cls: Any, ms: int) -> dict[str, int]:
    """Timeouts for a kafka-python client, under the names this version knows.

    kafka-python 3 renamed ``api_version_auto_timeout_ms`` to
    ``bootstrap_timeout_ms`` and rejects unknown keys; pyproject allows >=2.0.2.
    """
    known = getattr(client_cls, "DEFAULT_CONFIG", {})
    names = ("request_timeout_ms", "bootstrap_timeout_ms", "api_version_auto_timeout_ms")
    return {name: ms for name in names if name in known}


def _partition_counts(admin: Any, names: list[str]) -> dict[str, int | None]:
    """Partition count per topic from a metadata request; None where unknown yet."""
    counts: dict[str, int | None] = {name: None for name in names}
    for topic in admin.describe_topics(names):
        if topic.get("error_code", 0) == 0 and topic["name"] in counts:
            counts[topic["name"]] = len(topic["partitions"])
    return counts
