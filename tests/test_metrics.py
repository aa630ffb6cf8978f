"""stream.metrics: names, the small API the worker and the trainer call, and the /metrics endpoint."""

from __future__ import annotations

import asyncio
import math
import re
import time
import urllib.request
from collections import namedtuple
from pathlib import Path

import numpy as np
import orjson
import pytest
import redis

from model.encoder import MicroBatcher
from stream import metrics
from stream.codec import Message
from stream.processor import StreamProcessor
from stream.settings import Settings
from stream.stack import free_port
from stream.store import RedisStore
from tests.promql import documented_name

README = Path(__file__).resolve().parent.parent / "README.md"
TP = namedtuple("TP", "topic partition")


def sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def streamrec_families():
    """streamrec's own metrics (Faust's bridged sensors keep Faust's names, and only exist in a worker)."""
    return [f for f in metrics.REGISTRY.collect()
            if f.name.startswith("streamrec_") and not f.name.startswith("streamrec_faust_")]


def test_metric_names_follow_prometheus_conventions():
    families = streamrec_families()
    assert len(families) >= 20
    for family in families:
        assert re.fullmatch(r"streamrec_[a-z0-9_]+", family.name), family.name
        assert family.documentation.strip(), family.name
        assert not re.search(r"_(ms|milliseconds|percent)$", family.name), "base units: seconds, ratios"
        if family.type != "counter":
            assert not family.name.endswith("_total"), family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_size")), family.name
    names = {f.name for f in metrics.REGISTRY.collect()}
    assert "process_resident_memory_bytes" in names  # the default process collector


def test_every_streamrec_metric_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `(streamrec_\w+)`", README.read_text(), flags=re.M))
    exported = {documented_name(f.name, f.type) for f in streamrec_families()}
    assert exported == documented, {"undocumented": exported - documented, "gone": documented - exported}


def test_hit_rate_window_slides():
    window = metrics.HitRateWindow(size=3)
    assert math.isnan(window.rate)
    rates = [window.observe(hit) for hit in (True, True, False, False, False)]
    assert rates == [1.0, 1.0, pytest.approx(2 / 3), pytest.approx(1 / 3), 0.0]
    assert len(window) == 3
    with pytest.raises(ValueError):
        metrics.HitRateWindow(size=0)


def test_observe_feedback_feeds_the_counters_and_the_gauge():
    hits, misses = sample("streamrec_feedback_total", outcome="hit"), sample("streamrec_feedback_total", outcome="miss")
    for hit in [True] * 3 + [False] * 7:
        rate = metrics.observe_feedback(hit)
    assert sample("streamrec_feedback_total", outcome="hit") - hits == 3
    assert sample("streamrec_feedback_total", outcome="miss") - misses == 7
    assert sample("streamrec_online_hit_rate") == rate == metrics.online_hit_rate.rate
    learned = sample("streamrec_ranker_examples_learned_total")
    metrics.examples_learned(11)
    metrics.model_version(4)
    assert sample("streamrec_ranker_examples_learned_total") - learned == 11
    assert sample("streamrec_model_version") == 4


def test_encoder_meter_on_a_real_micro_batcher():
    class Encoder:
        cache_hits = cache_misses = 0

        def encode(self, texts):
            self.cache_misses += len(texts)
            return np.ones((len(texts), 2), np.float32)

    encoder = Encoder()
    batches = sample("streamrec_encoder_batch_size_count")
    texts = sample("streamrec_encoder_batch_size_sum")
    misses = sample("streamrec_encoder_cache_misses_total")
    with MicroBatcher(encoder.encode, max_batch=4, max_wait_s=0.001,
                      on_batch=metrics.EncoderMeter(encoder)) as batcher:
        batcher.encode([f"t{i}" for i in range(10)])
    assert sample("streamrec_encoder_batch_size_count") - batches == batcher.batches >= 3
    assert sample("streamrec_encoder_batch_size_sum") - texts == 10
    assert sample("streamrec_encoder_cache_misses_total") - misses == 10
    assert sample("streamrec_encoder_batch_seconds_count") >= batcher.batches
    metrics.encoder_info(model="all-MiniLM-L6-v2", device="cpu", dtype="float32")
    assert sample("streamrec_encoder_info", model="all-MiniLM-L6-v2", device="cpu", dtype="float32") == 1


def test_consumer_lag_from_the_consumers_bookkeeping():
    class Consumer:
        def __init__(self):
            self.assigned = {TP("events", 0): 120, TP("events", 1): 50, TP("items", 0): None}
            self._committed_offset = {TP("events", 0): 100, TP("events", 1): 50, TP("items", 0): 3}

        def assignment(self):
            return set(self.assigned)

        def highwater(self, tp):
            return self.assigned[tp]

    consumer = Consumer()
    lags = metrics.observe_consumer_lag(consumer)
    assert lags == {("events", 0): 20, ("events", 1): 0}  # items: no fetch yet, so no guess
    assert sample("streamrec_consumer_lag", topic="events", partition="0") == 20
    del consumer.assigned[TP("events", 0)]  # revoked in a rebalance: its series goes
    metrics.observe_consumer_lag(consumer)
    assert metrics.REGISTRY.get_sample_value("streamrec_consumer_lag", {"topic": "events", "partition": "0"}) is None

    class NotStarted:
        def assignment(self):
            raise RuntimeError("consumer not started")

    assert metrics.observe_consumer_lag(NotStarted()) == {}


def test_health_follows_each_retry_loop():
    health = metrics.Health()
    assert sample("streamrec_up") in (0.0, 1.0)
    health.ready()
    assert sample("streamrec_up") == 1
    items, events = object(), object()
    retries = sample("streamrec_dependency_retries_total", dependency="redis")
    health.failing(items, "redis")
    health.failing(events, "redis")
    health.failing(events, "redis")
    assert sample("streamrec_dependency_retries_total", dependency="redis") - retries == 3
    health.recovered(items)
    assert sample("streamrec_up") == 0 and sample("streamrec_dependency_up", dependency="redis") == 0
    health.recovered(events)
    assert sample("streamrec_up") == 1 and sample("streamrec_dependency_up", dependency="redis") == 1
    assert metrics.dependency_of(redis.TimeoutError()) == "redis"


def test_serve_exposes_the_registry_over_http():
    assert metrics.serve(0) is None  # 0 = off
    port = free_port()
    server = metrics.serve(port, "127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'streamrec_events_total{outcome="ok",type="click"}' in body
    assert "# TYPE streamrec_event_to_recommendation_seconds histogram" in body
    assert "process_resident_memory_bytes" in body


def test_recommendations_sent_observes_both_latencies():
    before = sample("streamrec_recommendations_total")
    ingest = sample("streamrec_ingest_to_recommendation_seconds_bucket", le="0.005")
    event_slow = sample("streamrec_event_to_recommendation_seconds_bucket", le="+Inf")
    now = time.time()
    metrics.recommendations_sent([(now - 86400, now - 0.002), (now + 5, None)], now=now)
    assert sample("streamrec_recommendations_total") - before == 2
    assert sample("streamrec_ingest_to_recommendation_seconds_bucket", le="0.005") - ingest == 1
    assert sample("streamrec_event_to_recommendation_seconds_bucket", le="+Inf") - event_slow == 2


# --------------------------------------------------------------------------- the worker's side, against redis


class FlakyStore(RedisStore):
    """Fails the first ``load_users`` as a Redis outage would."""

    failures = 1

    def load_users(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("simulated outage")
        return super().load_users(*args, **kwargs)


@pytest.mark.integration
def test_store_round_trips_are_timed_and_a_retried_batch_counts_once(stack):
    settings = Settings(redis_url=stack.redis_url, redis_prefix=f"tm{free_port()}:")
    calls: list[tuple[str, float]] = []
    store = FlakyStore(settings.redis_url, settings.redis_prefix,
                       on_round_trip=lambda op, s: calls.append((op, s)))

    async def encode(texts):
        return np.ones((len(texts), 8), np.float32)

    processor = StreamProcessor(settings, store, encode, dim=8)
    event = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "type": "cart",
             "ts": time.time() - 1, "scene": "home"}
    batch = [Message(b"u1", orjson.dumps(event), 0, 7, time.time() - 0.01), Message(b"u1", b"{not json", 0, 8)]
    ok = sample("streamrec_events_total", type="cart", outcome="ok")
    dlq = sample("streamrec_dead_letters_total", source="events", reason="not_json")
    try:
        with pytest.raises(redis.ConnectionError):
            asyncio.run(processor.handle_events(batch))
        out = asyncio.run(processor.handle_events(batch))  # what the agent's retry does
        recs, dead = out.recommendations, out.dead_letters
    finally:
        processor.close()
    assert len(recs) == 1 and len(dead) == 1
    assert recs[0].event_ts == event["ts"] and recs[0].ingest_ts == batch[0].timestamp
    assert sample("streamrec_events_total", type="cart", outcome="ok") - ok == 1
    assert sample("streamrec_dead_letters_total", source="events", reason="not_json") - dlq == 1
    operations = {op for op, _ in calls}
    assert {"load_users", "save_users"} <= operations  # popularity is written inside save_users' MULTI
    assert all(seconds >= 0 for _, seconds in calls)
