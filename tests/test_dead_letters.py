"""A dead letter is always sendable, and one bad record never costs a valid one its answer.

Every source (events, items, forget requests, feedback) at, just under and far
over its size limit, with payloads that grow when escaped (control
characters: six bytes each in JSON), that are not text (base64: 4/3) or that
are multi-byte text. The worker's own processor runs against a real
redis-server; the encoder is a deterministic stand-in (it is not under test).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import numpy as np
import orjson
import pytest

from model.datasets.synthetic import make_catalog
from model.schema import InvalidInput
from stream.codec import Message, dead_letter
from stream.learning import Trainer
from stream.processor import StreamProcessor
from stream.settings import Settings
from stream.store import RedisStore

LIMIT = Settings().dead_letter_max_bytes
PAYLOADS = {
    "ascii": lambda n: b"a" * n,
    "control": lambda n: b"\x01" * n,                      # \u0001 once escaped: 6 bytes each
    "binary": lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256),
    "multibyte": lambda n: ("é" * (n // 2)).encode() + b"x" * (n % 2),
}
SIZES = [LIMIT - 1, LIMIT, LIMIT + 1, 20 * LIMIT, 1_048_576]


def original(record: dict) -> bytes:
    """The payload prefix a dead letter carries, as bytes."""
    text = record["payload"]
    return base64.b64decode(text) if record["payload_encoding"] == "base64" else text.encode()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", PAYLOADS)
def test_a_dead_letter_fits_whatever_it_carries(kind, size):
    raw = PAYLOADS[kind](size)
    out = dead_letter(Message(b"u1", raw, 3, 99), InvalidInput("oversized"), "events", LIMIT)
    assert len(out.value) <= LIMIT and out.key == b"u1"
    record = orjson.loads(out.value)
    assert record["payload_bytes"] == size and record["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    prefix = original(record)
    assert raw.startswith(prefix) and record["payload_truncated"] == (len(prefix) < size)
    assert len(prefix) > LIMIT // 8, "as much of the payload as fits, not nothing"
    assert (record["topic"], record["partition"], record["offset"]) == ("events", 3, 99)


def test_a_small_payload_is_kept_whole_and_a_huge_key_by_its_digest():
    out = dead_letter(Message(b"k" * 100_000, b"not json"), InvalidInput("not_json"), "events", LIMIT)
    record = orjson.loads(out.value)
    assert record["payload"] == "not json" and not record["payload_truncated"]
    assert out.key == hashlib.sha256(b"k" * 100_000).hexdigest().encode() == record["key_sha256"].encode()


async def hashed_vectors(texts):
    return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]).astype(np.float32)


@pytest.fixture
def processor(make_settings):
    settings = make_settings()
    proc = StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), hashed_vectors, 8)
    catalog = make_catalog(n_categories=2, items_per_category=5)
    asyncio.run(proc.handle_items([Message(i["item_id"].encode(), orjson.dumps(i)) for i in catalog]))
    yield proc, catalog
    proc.close()


def event(n: int, item: str, **extra) -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "user_id": "u1", "item_id": item, "type": "click",
                         "ts": 1.7e9 + n, "scene": "home", **extra})


@pytest.mark.integration
def test_oversized_events_are_dead_lettered_and_the_valid_ones_answered(processor):
    proc, catalog = processor
    limit = proc.settings.max_payload_bytes
    item = catalog[0]["item_id"]
    padding = len(event(0, item, extra=""))                    # unknown fields are allowed
    just_under = event(3, item, extra="x" * (limit - padding))
    assert len(just_under) == limit
    bad = [b"\x01" * 200_000,                                        # the reported crash
           event(1, item, extra="x" * 1_000_000),                    # a 1 MB JSON event
           event(2, item, extra="x" * (limit - padding + 1)),        # one byte over
           b"\xff" * (limit + 1)]
    ok = [just_under, event(4, catalog[1]["item_id"])]
    batch = [Message(b"u1", value, 0, offset) for offset, value in enumerate([ok[0], *bad, ok[1]])]
    out = asyncio.run(proc.handle_events(batch))
    answers, dead = out.recommendations, out.dead_letters
    assert [orjson.loads(a.value)["event_id"] for a in answers] == ["e3", "e4"]
    assert len(dead) == len(bad) and all(len(d.value) <= proc.settings.dead_letter_max_bytes for d in dead)
    assert {orjson.loads(d.value)["reason"] for d in dead} <= {"oversized", "bad_characters", "not_json"}


@pytest.mark.integration
def test_an_oversized_item_or_forget_request_is_dead_lettered(processor):
    proc, _ = processor
    big = {"item_id": "huge", "title": "Huge", "category": "x", "text": "\x01" * 1_000_000}
    dead = asyncio.run(proc.handle_items([Message(b"huge", orjson.dumps(big))]))
    assert len(dead) == 1 and len(dead[0].value) <= proc.settings.dead_letter_max_bytes
    assert "huge" not in proc.recommender.index
    tombstones, dead = asyncio.run(proc.forget_users([Message(b"u1", b'{"user_id": "' + b"u" * 2_000_000 + b'"}')]))
    assert not tombstones and len(dead) == 1 and len(dead[0].value) <= proc.settings.dead_letter_max_bytes


@pytest.mark.integration
def test_an_answer_too_large_to_send_dead_letters_its_event(make_settings):
    settings = make_settings(max_message_bytes=600)
    proc = StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), hashed_vectors, 8)
    try:
        catalog = make_catalog(n_categories=1, items_per_category=5)
        asyncio.run(proc.handle_items([Message(i["item_id"].encode(), orjson.dumps(i)) for i in catalog]))
        batch = [Message(b"u1", event(n, catalog[n]["item_id"]), 0, n) for n in range(3)]
        out = asyncio.run(proc.handle_events(batch))
        answers, dead = out.recommendations, out.dead_letters
        reasons = [orjson.loads(d.value)["reason"] for d in dead]
        # The first answer (nothing to recommend yet) is small; the later ones, listing items, are not.
        assert len(answers) + len(dead) == 3 and reasons and set(reasons) == {"answer_too_large"}
    finally:
        proc.close()


@pytest.mark.integration
def test_oversized_feedback_is_dead_lettered_by_the_trainer(make_settings):
    settings = make_settings()
    trainer = Trainer(settings, RedisStore(settings.redis_url, settings.redis_prefix))
    n = len(trainer.ranker.features)
    good = orjson.dumps({"X": [[0.1] * n, [-0.1] * n], "y": [1, 0]})
    huge = orjson.dumps({"X": [[0.1] * n] * 30_000, "y": [1] * 30_000})
    assert len(huge) > settings.max_feedback_bytes
    dead = trainer.learn([Message(b"u1", good), Message(b"u1", huge), Message(b"u1", b"\x01" * 3_000_000)])
    assert len(dead) == 2 and all(len(d.value) <= settings.dead_letter_max_bytes for d in dead)
    assert trainer.ranker.n_learned == 2
