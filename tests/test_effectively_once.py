"""Redelivery and duplicates: every event is answered, none is applied twice (real redis-server).

Kafka delivers at least once: after a crash, events whose state was already
written are delivered again. The processor must recognise them by the
position (partition, offset) stored with each user's state, and a client's
retry by its event_id.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import orjson
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from model.datasets.synthetic import DriftingUsers, make_catalog
from model.schema import InvalidInput, parse_event
from stream.codec import Message
from stream.processor import StreamProcessor
from stream.store import RedisStore

pytestmark = pytest.mark.integration


async def hashed_vectors(texts):
    """A deterministic stand-in for the text encoder: the encoder is not what these tests are about."""
    return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]).astype(np.float32)


@pytest.fixture(params=[64, 0], ids=["dedupe-by-id", "offsets-alone"])
def processor(make_settings, request):
    # With the event-id window off, only the stored (partition, offset) can spot a redelivery.
    settings = make_settings(dedupe_window=request.param)
    store = RedisStore(settings.redis_url, settings.redis_prefix, user_ttl_s=settings.user_ttl_s)
    proc = StreamProcessor(settings, store, hashed_vectors, 16)
    catalog = make_catalog(n_categories=4, items_per_category=10)
    asyncio.run(proc.handle_items([Message(None, orjson.dumps(i)) for i in catalog]))
    yield proc, catalog
    proc.close()


def log_of(catalog, n=120):
    events = DriftingUsers(catalog, n_users=6, seed=1, start_ts=time.time() - 86400).events(n)
    return [Message(e["user_id"].encode(), orjson.dumps(e), partition=0, offset=o) for o, e in enumerate(events)]


def state_digest(proc: StreamProcessor) -> dict:
    r, prefix = proc.store.redis, proc.store.prefix
    users = {}
    for key in r.scan_iter(f"{prefix}user:*"):
        fields = r.hgetall(key)
        users[key] = (fields[b"n"], np.frombuffer(fields[b"v"], dtype=np.float32).round(5).tobytes(), fields[b"seen"])
    return {"users": users, "pop": r.zrange(f"{prefix}pop", 0, -1, withscores=True),
            "pairs": proc.store.pair_rows()}


def test_a_redelivered_batch_is_answered_but_not_applied_again(processor):
    proc, catalog = processor
    log = log_of(catalog)
    answered = []
    for start in range(0, len(log), 40):
        out = asyncio.run(proc.handle_events(log[start:start + 40]))
        answered += [orjson.loads(r.value)["event_id"] for r in out.recommendations]
    once = state_digest(proc)
    # The worker died after writing the state of the last two batches but before committing
    # their offsets: Kafka delivers them again, a little re-batched.
    for start in range(40, len(log), 25):
        out = asyncio.run(proc.handle_events(log[start:start + 25]))
        answered += [orjson.loads(r.value)["event_id"] for r in out.recommendations]
    assert state_digest(proc) == once                       # nothing applied twice
    assert sum(int(n) for n, _, _ in once["users"].values()) == len(log)
    assert set(answered) == {orjson.loads(m.value)["event_id"] for m in log}  # nothing unanswered
    assert proc.outcomes["events:redelivered"] == len(log) - 40


def test_a_retried_event_id_counts_once(processor):
    proc, catalog = processor
    if proc.settings.model.dedupe_window == 0:
        pytest.skip("deduplication by event id is off")
    log = log_of(catalog, 30)
    retry = Message(log[5].key, log[5].value, partition=0, offset=30)  # same event, published again
    asyncio.run(proc.handle_events(log + [retry]))
    assert sum(int(n) for n, _, _ in state_digest(proc)["users"].values()) == len(log)


def test_a_retry_is_counted_as_a_duplicate_and_a_clash_is_dead_lettered(processor):
    proc, catalog = processor
    if proc.settings.model.dedupe_window == 0:
        pytest.skip("deduplication by event id is off")
    first = {"event_id": "same", "user_id": "dee", "item_id": catalog[0]["item_id"], "type": "click",
             "ts": time.time() - 60, "scene": "home"}
    retry = {**first, "ts": first["ts"] + 5}                          # a client re-stamped its retry
    clash = {**first, "item_id": catalog[1]["item_id"]}               # another event under the same id
    before = proc.outcomes["events:duplicate"]
    out = asyncio.run(proc.handle_events([Message(b"dee", orjson.dumps(e), 0, n)
                                          for n, e in enumerate([first, retry, clash])]))
    assert [orjson.loads(r.value)["event_id"] for r in out.recommendations] == ["same", "same"]
    assert [orjson.loads(d.value)["reason"] for d in out.dead_letters] == ["duplicate_event_id"]
    assert proc.outcomes["events:duplicate"] - before == 1
    (state,) = proc.store.load_users(["dee"], 16, proc.settings.model.half_lives_s).values()
    assert state.n_events == 1 and list(state.seen) == [catalog[0]["item_id"]]


def test_a_producer_clock_running_fast_cannot_outweigh_later_events(processor):
    """An event cannot happen after it reaches the worker: its time is clamped to the worker's clock."""
    proc, catalog = processor
    a, b = catalog[0]["item_id"], catalog[-1]["item_id"]
    now = time.time()
    fast = {"event_id": "f1", "user_id": "fay", "item_id": a, "type": "click", "ts": now + 23 * 3600, "scene": "home"}
    later = {"event_id": "f2", "user_id": "fay", "item_id": b, "type": "click", "ts": now + 10, "scene": "home"}
    asyncio.run(proc.handle_events([Message(b"fay", orjson.dumps(fast), 0, 0)]))
    time.sleep(0.05)
    asyncio.run(proc.handle_events([Message(b"fay", orjson.dumps(later), 0, 1)]))
    (state,) = proc.store.load_users(["fay"], 16, proc.settings.model.half_lives_s).values()
    short_term = state.interests.unit_vectors()[0]
    vectors = proc.recommender.index
    assert short_term @ vectors.vector(b) > short_term @ vectors.vector(a)  # the later, correct event leads
    assert state.interests.ts <= time.time() + proc.settings.max_clock_skew_s


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    # json.dumps also writes NaN, Infinity and integers beyond 64 bits: good junk for the decoder.
    st.dictionaries(st.sampled_from(["event_id", "user_id", "item_id", "type", "ts", "scene", "query", "x"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                              st.sampled_from(["view", "click", "cart", "purchase"]),
                              st.floats(min_value=1e9, max_value=2e9), st.lists(st.integers(), max_size=3)),
                    max_size=8).map(lambda d: json.dumps(d).encode()),
))
def test_the_decoder_never_raises_anything_but_invalid_input(payload):
    """Fuzz: whatever bytes arrive, the result is an Event or an InvalidInput with a reason."""
    try:
        event = parse_event(payload, now=time.time(), max_bytes=65536)
    except InvalidInput as err:
        assert err.reason
    else:
        assert event.type in ("view", "click", "cart", "purchase") and event.ts == event.ts


def test_inactive_users_expire(processor):
    """Redis memory is bounded by active users: each write sets the state's time to live."""
    proc, catalog = processor
    asyncio.run(proc.handle_events(log_of(catalog, 10)))
    r = proc.store.redis
    ttls = [r.ttl(key) for key in r.scan_iter(f"{proc.store.prefix}user:*")]
    assert ttls and all(0 < t <= proc.settings.user_ttl_s for t in ttls)


def test_a_batch_retried_after_a_failed_write_counts_once_in_memory(processor, make_settings):
    """Redis fails as the batch's states are written: the retry must not count co-visitation twice."""
    proc, catalog = processor
    log = log_of(catalog, 60)
    save, failures = proc.store.save_users, []

    def fails_once(*args, **kwargs):  # the dependency failing, not the code under test
        if not failures:
            failures.append(1)
            raise redis.ConnectionError("injected: connection lost during EXEC")
        return save(*args, **kwargs)

    proc.store.save_users = fails_once
    with pytest.raises(redis.ConnectionError):
        asyncio.run(proc.handle_events(log))
    asyncio.run(proc.handle_events(log))  # what the agent's retry loop does

    clean = StreamProcessor(proc.settings, RedisStore(proc.settings.redis_url, proc.settings.redis_prefix + "clean:"),
                            hashed_vectors, 16)
    asyncio.run(clean.handle_items([Message(None, orjson.dumps(i)) for i in catalog]))
    asyncio.run(clean.handle_events(log))
    ours, theirs = proc.recommender, clean.recommender
    assert ours.covisit.as_dict() == theirs.covisit.as_dict() and ours.covisit.rows
    assert ours.bundles.as_dict() == theirs.bundles.as_dict()
    assert np.array_equal(ours.popularity.log_scores, theirs.popularity.log_scores)
    assert {s: p.log_scores.tolist() for s, p in ours.segment_popularity.items()} == \
        {s: p.log_scores.tolist() for s, p in theirs.segment_popularity.items()}
    assert sum(int(n) for n, _, _ in state_digest(proc)["users"].values()) == len(log)
    clean.close()
