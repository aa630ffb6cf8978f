"""User deletion: ``streamrec forget USER_ID`` asks, the worker removes every trace of the user.

1. The request goes to the ``users.forget`` topic (``Settings.forget_topic``),
   keyed by the user id. It has as many partitions as ``events`` and the same
   key, so it lands on the worker that owns the user's events (Faust assigns
   co-partitioned topics together), whose model thread serialises it with
   that user's event batches.
2. The worker deletes every per-user key in Redis
   (:meth:`stream.store.RedisStore.forget_user`) and sends a tombstone — a
   null value keyed by the user — to ``recommendations``, so apps that keep
   the latest list per user drop it (and compaction would too).
3. The user's next event starts from nothing, like a new user's.

Aggregates hold no user id and stay: popularity, co-visitation, co-purchase,
the ranker's weights. Messages already in Kafka (``events``, ``events.dlq``,
past ``recommendations``) age out with the topics' retention.

>>> body = request_body("u1", requested_ts=1.0)
>>> body
b'{"user_id":"u1","requested_ts":1.0}'
>>> parse_request(body)
'u1'
>>> parse_request(b'{"user": "u1"}')
Traceback (most recent call last):
...
model.schema.InvalidInput: missing_field in 'user_id'
"""

from __future__ import annotations

import time

import orjson

# _string is the very check an event's user_id passes: any id the worker took can be forgotten.
from model.schema import _string, decode_json


def request_body(user_id: str, requested_ts: float | None = None) -> bytes:
    """The request's JSON: who, and when it was asked (for audit)."""
    return orjson.dumps({"user_id": user_id, "requested_ts": time.time() if requested_ts is None else requested_ts})


def parse_request(payload: bytes | None, max_bytes: int | None = None) -> str:
    """The user id a forget request names.

    Raises
    ------
    model.schema.InvalidInput
        With the same reasons as events (``not_json``, ``missing_field``, ...),
        so a bad request goes to the dead-letter topic like a bad event.
    """
    return _string(decode_json(payload, max_bytes), "user_id")


def request_forget(settings, user_id: str, timeout: float = 10.0) -> None:
    """Publish a forget request for ``user_id`` and wait for the broker's ack.

    Parameters
    ----------
    settings : stream.settings.Settings
        Gives the broker and ``forget_topic``.
    user_id
        The user to forget; validated as the worker will.
    timeout
        Seconds to wait for the ack.
    """
    from kafka import KafkaProducer

    body = request_body(user_id)
    parse_request(body)  # refuse here what the worker would dead-letter
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        producer.send(settings.forget_topic, key=user_id.encode(), value=body).get(timeout=timeout)
    finally:
        producer.close(timeout=timeout)
