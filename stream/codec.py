"""Every message format streamrec reads or writes, in one place (as Bytewax keeps its serde).

=================  =====  ===========  ==============================================
topic              way    key          value
=================  =====  ===========  ==============================================
``events``         in     user id      an event (:func:`model.schema.parse_event`)
``events.rekeyed``   both  user id      an event that came with another key, forwarded as it was
``items``          in     item id      an item (:func:`model.schema.parse_item`)
``users.forget``   in     user id      :func:`encode_forget`
``recommendations``  out  user id      :func:`encode_recommendation`; null: user forgotten
``events.dlq``     out    source key   :func:`dead_letter`
``feedback``       both   user id      :func:`encode_feedback` / :func:`decode_feedback`
``model.snapshots``  out  ``ranker``   :meth:`model.ranker.OnlineRanker.to_bytes`
=================  =====  ===========  ==============================================

Decoding is validation: every ``decode_*`` raises
:class:`model.schema.InvalidInput` with a machine-readable reason, and
:func:`decode_all` is the one loop that turns a batch of raw records into
decoded values plus dead letters, whatever the topic.

>>> body = encode_forget("u1", requested_ts=1.0)
>>> body
b'{"user_id":"u1","requested_ts":1.0}'
>>> decode_forget(body)
'u1'
>>> decoded = decode_all([Message(b"u1", body), Message(b"u2", b'{"user": "u2"}')], decode_forget, "users.forget")
>>> [value for value, _ in decoded.values], decoded.reasons
(['u1'], ['missing_field'])
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import orjson
from aiokafka.partitioner import murmur2

from model.recommender import Feedback
from model.schema import (
    MAX_ID_LEN,
    Event,
    InvalidInput,
    Item,
    Recommended,
    decode_json,
    require_string,
)

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A raw record as consumed, with where it came from."""

    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = -1
    timestamp: float = 0.0
    #: For a re-keyed event: (partition, offset) in ``events`` it was forwarded from.
    origin: tuple[int, int] | None = None

    @property
    def position(self) -> tuple[int, int]:
        """Where this record sits in the events log: its origin if it was forwarded, else itself."""
        return self.origin if self.origin is not None else (self.partition, self.offset)


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to send. A recommendation carries its event's timestamps, for the latency metrics."""

    #: None: no key (the producer spreads such records over partitions).
    key: bytes | None
    #: None is a tombstone.
    value: bytes | None
    event_ts: float | None = None
    ingest_ts: float | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


# --- keys and partitions
#: The header a forwarded event carries: ``b"<partition>:<offset>"`` of the record it came from.
ORIGIN_HEADER = "streamrec-origin"


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as the Java client) gives ``key``.

    A user's state has one owner: the worker holding this partition of ``events``.

    >>> [partition_of(user.encode(), 4) for user in ("u1", "u2", "alice")]
    [0, 2, 1]
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def forwarded(message: Message, user_id: str) -> Outgoing:
    """``message`` re-keyed by its user, remembering where it came from (Kafka Streams' selectKey → through)."""
    partition, offset = message.position
    return Outgoing(user_id.encode(), message.value, headers=((ORIGIN_HEADER, f"{partition}:{offset}".encode()),))


def origin_of(headers) -> tuple[int, int] | None:
    """The origin in a forwarded record's headers (pairs or a mapping), None if there is none."""
    for name, value in (headers.items() if hasattr(headers, "items") else headers or ()):
        if name == ORIGIN_HEADER and value:
            partition, _, offset = bytes(value).decode().partition(":")
            return int(partition), int(offset)
    return None


@dataclasses.dataclass
class Decoded(Generic[T]):
    """A batch after decoding: the values with their messages, and a dead letter for each record that failed."""

    values: list[tuple[T, Message]]
    dead: list[Outgoing]
    #: The reason of each dead letter, in order (for the metrics).
    reasons: list[str]
    #: The topic the records were read from (what their dead letters name).
    topic: str = ""


def decode_all(messages: Sequence[Message], decode: Callable[[bytes | None], T], source_topic: str,
               dead_letter_max_bytes: int = 16384) -> Decoded[T]:
    """Decode every message with ``decode``; a record it refuses becomes a dead letter, the others go on."""
    out: Decoded[T] = Decoded([], [], [], source_topic)
    for message in messages:
        try:
            out.values.append((decode(message.value), message))
        except InvalidInput as err:
            out.dead.append(dead_letter(message, err, source_topic, dead_letter_max_bytes))
            out.reasons.append(err.reason)
    return out


# --- in: events and items are decoded by model.schema's parse_event / parse_item; forget requests here
def encode_forget(user_id: str, requested_ts: float | None = None) -> bytes:
    """A forget request: who, and when it was asked (for audit)."""
    return orjson.dumps({"user_id": user_id, "requested_ts": time.time() if requested_ts is None else requested_ts})


def decode_forget(payload: bytes | None, *, max_bytes: int | None = None) -> str:
    """The user id a forget request names, checked as an event's ``user_id`` is: any id a worker took can go."""
    return require_string(decode_json(payload, max_bytes), "user_id")


# --- out: recommendations, dead letters
def encode_recommendation(event: Event, items: Sequence[Recommended], titles: dict[str, Item], *,
                          model_version: int, ingest_ts: float, received_ts: float, sent_ts: float) -> bytes:
    """One event's answer: the ranked items with their titles and reasons, and the pipeline's timestamps."""
    return orjson.dumps({
        "user_id": event.user_id,
        "event_id": event.event_id,
        "scene": event.scene,
        "model_version": model_version,
        "event_ts": event.ts,
        "ingest_ts": ingest_ts,
        "received_ts": received_ts,
        "sent_ts": sent_ts,
        "items": [dict(r.to_dict(), title=titles[r.item_id].title) for r in items],
    })


#: Bytes a dead letter's key may keep as it is; a longer one is replaced by its sha256 (hex).
MAX_KEY_BYTES = 256


def dead_letter(message: Message, error: InvalidInput, source_topic: str, max_bytes: int = 16384) -> Outgoing:
    """The DLQ record: the reason, where the record came from, and what it held, in at most ``max_bytes``.

    A bad record can be any size, and escaping can make it six times larger
    (a control character becomes ``\\u0001``), while a record the producer
    cannot send would stop the batch it belongs to. So the record always fits:
    the payload's original size and sha256 are given in full, and as much of
    its beginning as fits (``payload_truncated`` says whether that is all of it).
    Valid UTF-8 is kept as text, anything else as base64 (``payload_encoding``).
    """
    raw = message.value or b""
    key = message.key
    body: dict[str, Any] = {
        "reason": error.reason,
        "field": error.field,
        "error": str(error)[:500],
        "topic": source_topic,
        "partition": message.partition,
        "offset": message.offset,
        "payload_bytes": len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "dead_lettered_ts": time.time(),
    }
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = hashlib.sha256(key).hexdigest().encode()
        body["key_sha256"] = key.decode()
    overhead = len(orjson.dumps({**body, "payload": "", "payload_encoding": "base64", "payload_truncated": True}))
    prefix = min(len(raw), max_bytes)
    while True:
        payload, encoding = _text_or_base64(raw[:prefix])
        record = orjson.dumps({**body, "payload": payload, "payload_encoding": encoding,
                               "payload_truncated": prefix < len(raw)})
        if len(record) <= max_bytes or prefix == 0:
            return Outgoing(key, record)
        # Scale the prefix by what each byte measured to cost once encoded, with a 5 % margin.
        per_byte = (len(record) - overhead) / prefix
        prefix = min(prefix - 1, max(int(0.95 * (max_bytes - overhead) / per_byte), 0))


def _text_or_base64(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        if err.start >= len(raw) - 3 and err.reason == "unexpected end of data":  # a cut multi-byte character
            return raw[:err.start].decode("utf-8"), "utf-8"
        return base64.b64encode(raw).decode(), "base64"


# --- feedback: labelled impressions and next-item examples, worker → trainer
#: Most recent items a feedback record may carry as the context of the item taken.
MAX_CONTEXT_ITEMS = 64


class FeedbackRecord(NamedTuple):
    """A decoded feedback record: one labelled list (maybe empty) and maybe a next-item example."""

    X: np.ndarray
    y: np.ndarray
    #: ``(the user's recent items, the latest first; the item taken)``, for the learned representations.
    sequence: tuple[list[str], str] | None = None


def encode_feedback(event: Event, feedback: Feedback | None, sequence: tuple[list[str], str] | None = None) -> bytes:
    """The list shown before ``event`` labelled by it, and the event as a next-item example (either may be absent)."""
    body: dict[str, Any] = {"user_id": event.user_id, "event_id": event.event_id, "X": [], "y": []}
    if feedback is not None:
        body.update(hit=feedback.hit, model_version=feedback.model_version, X=feedback.X.tolist(),
                    y=feedback.y.tolist())
    if sequence is not None:
        body.update(context=sequence[0], item_id=sequence[1])
    return orjson.dumps(body)


def decode_feedback(payload: bytes | None, n_features: int, max_bytes: int | None = None) -> FeedbackRecord:
    """The record's labelled list, checked against the ranker's feature count, and its next-item example."""
    body = decode_json(payload, max_bytes)
    try:
        X = np.asarray(body["X"], dtype=np.float64).reshape(-1, n_features)
        y = np.asarray(body["y"], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput("bad_feedback", detail=str(exc)[:200]) from None
    if not isinstance(body["y"], list) \
            or len(X) != len(y) or not np.isfinite(X).all() or not set(np.unique(y)) <= {0.0, 1.0}:
        raise InvalidInput("bad_feedback", detail="X and y disagree, or values are not finite / not 0-1")
    if len(y) and y.sum() != 1:
        raise InvalidInput("bad_feedback", detail=f"a list has exactly one item taken (y = 1), not {int(y.sum())}")
    return FeedbackRecord(X, y, _sequence(body))


def _sequence(body: Mapping[str, Any]) -> tuple[list[str], str] | None:
    context, item = body.get("context"), body.get("item_id")
    if context is None and item is None:
        return None

    def is_id(value: object) -> bool:
        return isinstance(value, str) and 0 < len(value) <= MAX_ID_LEN

    if not (isinstance(context, list) and len(context) <= MAX_CONTEXT_ITEMS and all(map(is_id, context))
            and is_id(item)):
        raise InvalidInput("bad_feedback", detail=f"context is a list of at most {MAX_CONTEXT_ITEMS} item ids "
                                                  "and item_id an item id, both or neither")
    return context, str(item)
