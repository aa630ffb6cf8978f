"""The walking skeleton end to end: real Tansu broker, real redis-server, a real worker process."""

from __future__ import annotations

import time

import pytest
import redis

from model.synthetic import make_catalog
from stream.demo import start_worker, stop_worker, wait_for
from tests.clients import Collector, produce

pytestmark = pytest.mark.integration

T0 = time.time() - 86400


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(n_categories=6, items_per_category=30, seed=3)


@pytest.fixture
def running(make_settings, stack, catalog, tmp_path):
    """A worker with the catalogue encoded, and collectors on its output topics."""
    settings = make_settings(half_lives_s=(300.0, 30 * 86400.0), half_life_weights=(0.7, 0.3))
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, loglevel="info")
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    dlq = Collector(stack.bootstrap_servers, settings.dlq_topic)
    try:
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        r = redis.Redis.from_url(stack.redis_url)
        wait_for(lambda: r.hlen(settings.redis_prefix + "item:vec") == len(catalog), 90,
                 "the catalogue to be encoded", worker, log_path)
        yield settings, recs, dlq
    finally:
        recs.close()
        dlq.close()
        stop_worker(worker)


def events_for(user: str, items: list[dict], start: float, step: float = 120.0, prefix: str = "e"):
    return [{"event_id": f"{prefix}{n}", "user_id": user, "item_id": item["item_id"], "type": "click",
             "ts": start + n * step, "scene": "home", "query": None} for n, item in enumerate(items)]


def on_category(rec: dict, by_id: dict, category: str) -> float:
    return sum(by_id[i["item_id"]]["category"] == category for i in rec["items"]) / len(rec["items"])


def test_recommendations_follow_a_users_interest_and_its_switch(running, stack, catalog):
    settings, recs, _ = running
    by_id = {i["item_id"]: i for i in catalog}
    first, second = catalog[0]["category"], catalog[-1]["category"]
    a_items = [i for i in catalog if i["category"] == first][:8]
    b_items = [i for i in catalog if i["category"] == second][:5]

    produce(stack.bootstrap_servers, settings.events_topic, events_for("alice", a_items, T0))
    got = recs.wait(8)
    assert [r["event_id"] for r in got] == [f"e{n}" for n in range(8)]  # one per event, in order
    last = got[-1]
    assert last["user_id"] == "alice" and len(last["items"]) == settings.top_k
    assert on_category(last, by_id, first) >= 0.8
    assert all(i["reason"] for i in last["items"])
    assert {"model_version", "event_ts", "ingest_ts", "sent_ts"} <= set(last)
    assert not {i["item_id"] for i in last["items"]} & {i["item_id"] for i in a_items}

    produce(stack.bootstrap_servers, settings.events_topic,
            events_for("alice", b_items, T0 + 8 * 120, prefix="s"))
    switched = recs.wait(13)[8:]
    shares = [on_category(r, by_id, second) for r in switched]
    assert shares[-1] >= 0.6, shares  # the short-term interest has taken over within five events
    assert shares == sorted(shares), shares


def test_bad_input_goes_to_the_dlq_and_the_worker_keeps_going(running, stack, catalog):
    settings, recs, dlq = running
    item = catalog[0]["item_id"]
    good = events_for("bob", [catalog[0], catalog[1]], T0)
    malformed = {"event_id": "x1", "user_id": "bob", "item_id": item, "type": "like", "ts": T0, "scene": "home"}
    produce(stack.bootstrap_servers, settings.events_topic, [good[0], malformed, b"{not json", good[1]])
    dead = dlq.wait(2)
    assert sorted(d["reason"] for d in dead) == ["not_json", "unknown_event_type"]
    assert any(d["payload"] == "{not json" for d in dead)
    assert all(d["topic"] == settings.events_topic and d["error"] for d in dead)
    answered = [r["event_id"] for r in recs.wait(2)]
    assert answered == ["e0", "e1"]
