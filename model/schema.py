"""Events, items and recommendations, and the validation that guards them.

Everything that enters the model goes through :func:`parse_event` or
:func:`parse_item`. Anything they reject raises :class:`InvalidInput`, whose
``reason`` is a short machine-readable code (``missing_field``,
``bad_type``...) and whose ``field`` names the culprit, so that the stream can
route the payload to the dead-letter topic with the reason attached.

Examples
--------
>>> e = parse_event(b'{"event_id": "e1", "user_id": "u1", "item_id": "i9", '
...                 b'"type": "click", "ts": 1700000000.0, "scene": "home"}')
>>> e.user_id, e.type, e.query
('u1', 'click', None)
>>> try:
...     parse_event({"event_id": "e1", "user_id": "u1", "item_id": "i9",
...                  "type": "like", "ts": 1700000000.0, "scene": "home"})
... except InvalidInput as err:
...     print(err.reason, err.field)
unknown_event_type type
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

EVENT_TYPES = ("view", "click", "cart", "purchase")

#: Identifiers are short printable strings; longer ones are almost always a bug upstream.
MAX_ID_LEN = 256
MAX_TEXT_LEN = 10_000
#: Timestamps before 1990-01-01 (a zero or unset clock; recorded logs such as MovieLens start
#: in 1995) or more than a day ahead of the wall clock (milliseconds sent as seconds) are
#: rejected: such clocks would poison every decay computation that follows.
MIN_TS = 631_152_000.0
MAX_FUTURE_S = 86_400.0


#: What each reason means, in words, for people (the reason itself is for machines).
EXPLANATIONS = {
    "not_json": "it is not JSON", "not_object": "it is not a JSON object", "empty_payload": "it is empty",
    "oversized": "it is too large", "missing_field": "{field} is missing", "bad_type": "{field} has the wrong type",
    "empty_field": "{field} is empty", "too_long": "{field} is too long",
    "bad_characters": "{field} holds control or unprintable characters", "bad_value": "{field} is out of range",
    "bad_timestamp": "{field} is not a plausible time in seconds", "unknown_event_type": "{field} is not an event type",
}


class InvalidInput(ValueError):
    """Input the model refuses, with a machine-readable ``reason`` and the ``field`` at fault."""

    def __init__(self, reason: str, field: str | None = None, detail: str = ""):
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" in {field!r}" if field else ""
        super().__init__(f"{reason}{where}" + (f": {detail}" if detail else ""))

    def explain(self) -> str:
        """The reason in words: ``"user_id is empty"``."""
        text = EXPLANATIONS.get(self.reason, self.reason.replace("_", " ")).format(field=self.field or "a field")
        return text + (f" ({self.detail})" if self.detail else "")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One user behaviour event: ``user_id`` did ``type`` to ``item_id`` at ``ts`` in ``scene``."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    ts: float
    scene: str
    query: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def fingerprint(self) -> str:
        """A digest of what the event says happened (not when: a client may re-stamp a retry).

        Two events under one ``event_id`` with different fingerprints are a clash, not a retry.
        """
        what = "\x1f".join((self.user_id, self.item_id, self.type, self.scene, self.query or ""))
        return hashlib.blake2b(what.encode(), digest_size=8).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """A catalogue item. ``text_for_encoder`` is what the sentence encoder reads."""

    item_id: str
    title: str
    category: str
    text: str = ""
    genres: tuple[str, ...] = ()
    price: float | None = None

    @property
    def text_for_encoder(self) -> str:
        parts = [self.title]
        labels = ", ".join(dict.fromkeys(g for g in (self.category, *self.genres) if g))  # each once
        if labels:
            parts.append(labels)
        if self.text:
            parts.append(self.text)
        return ". ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["genres"] = list(self.genres)
        return d


@dataclasses.dataclass(frozen=True, slots=True)
class Recommended:
    """One recommended item with the score that ranked it and the reason shown to the user."""

    item_id: str
    score: float
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "score": round(self.score, 6),
                "reason": self.reason, "source": self.source}


def decode_json(payload: bytes | str | Mapping[str, Any], max_bytes: int | None = None) -> Mapping[str, Any]:
    """Decode a JSON object, raising :class:`InvalidInput` for anything else."""
    if isinstance(payload, Mapping):
        return payload
    if payload is None:
        raise InvalidInput("empty_payload")
    if max_bytes is not None and len(payload) > max_bytes:
        raise InvalidInput("oversized", detail=f"{len(payload)} bytes > {max_bytes}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("not_json", detail=str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidInput("not_object", detail=type(obj).__name__)
    return obj


def parse_event(payload: bytes | str | Mapping[str, Any], *, now: float | None = None,
                max_bytes: int | None = None) -> Event:
    """Validate one event. ``now`` bounds how far in the future ``ts`` may be."""
    obj = decode_json(payload, max_bytes)
    ts = require_number(obj, "ts")
    if ts < MIN_TS:
        raise InvalidInput("bad_timestamp", "ts", f"{ts} is before 1990-01-01")
    if now is not None and ts > now + MAX_FUTURE_S:
        raise InvalidInput("bad_timestamp", "ts", f"{ts} is more than a day in the future")
    kind = require_string(obj, "type")
    if kind not in EVENT_TYPES:
        raise InvalidInput("unknown_event_type", "type", f"{kind[:50]!r} not in {EVENT_TYPES}")
    query = obj.get("query")
    if query is not None:
        query = require_string(obj, "query", max_len=MAX_TEXT_LEN, allow_empty=True)
    return Event(
        event_id=require_string(obj, "event_id"),
        user_id=require_string(obj, "user_id"),
        item_id=require_string(obj, "item_id"),
        type=kind,
        ts=ts,
        scene=require_string(obj, "scene"),
        query=query,
    )


def parse_item(payload: bytes | str | Mapping[str, Any], *, max_bytes: int | None = None) -> Item:
    """Validate one catalogue item; it needs a ``category`` or a list of ``genres``."""
    obj = decode_json(payload, max_bytes)
    genres = obj.get("genres")
    if genres is None:
        genres = []
    if not isinstance(genres, list) or not all(isinstance(g, str) for g in genres):
        raise InvalidInput("bad_type", "genres", "expected a list of strings")
    for n in range(len(genres)):  # each genre is a label like the category: printable, short, not blank
        require_string({"genres": genres[n]}, "genres")
    category = obj.get("category")
    if category is None:
        if not genres:
            raise InvalidInput("missing_field", "category", "an item needs a category or genres")
        category = genres[0]
    else:
        category = require_string(obj, "category")
    price = obj.get("price")
    if price is not None:
        price = require_number(obj, "price")
        if price < 0:
            raise InvalidInput("bad_value", "price", "negative")
    text = obj.get("text")
    return Item(
        item_id=require_string(obj, "item_id"),
        title=require_string(obj, "title", max_len=MAX_TEXT_LEN),
        category=category,
        text="" if text is None else require_string(obj, "text", max_len=MAX_TEXT_LEN, allow_empty=True),
        genres=tuple(genres),
        price=price,
    )


def require_string(obj: Mapping[str, Any], field: str, *, max_len: int = MAX_ID_LEN,
                   allow_empty: bool = False) -> str:
    """``obj[field]`` as a string: present, not blank (unless ``allow_empty``), short, printable if an id."""
    if field not in obj or obj[field] is None:
        raise InvalidInput("missing_field", field)
    value = obj[field]
    if not isinstance(value, str):
        raise InvalidInput("bad_type", field, f"expected a string, got {type(value).__name__}")
    if not value.strip() and not allow_empty:
        raise InvalidInput("empty_field", field)
    if len(value) > max_len:
        raise InvalidInput("too_long", field, f"{len(value)} characters > {max_len}")
    # Ids end up in Redis keys, logs and UIs: no control characters there. Free text may
    # hold newlines, but never NUL, which marks binary junk rather than prose.
    if (max_len == MAX_ID_LEN and not value.isprintable()) or "\x00" in value:
        raise InvalidInput("bad_characters", field, "control or unprintable characters")
    return value


def require_number(obj: Mapping[str, Any], field: str) -> float:
    """``obj[field]`` as a finite float (a JSON number, not a bool)."""
    if field not in obj or obj[field] is None:
        raise InvalidInput("missing_field", field)
    value = obj[field]
    # bool is an int in Python, but true/false is never a timestamp or a price.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput("bad_type", field, f"expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInput("bad_value", field, "not finite")
    return value
