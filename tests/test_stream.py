"""The walking skeleton end to end: real Tansu broker, real redis-server, a real worker process."""

from __future__ import annotations

import re
import time

import orjson
import pytest
import redis

from model.datasets.synthetic import make_catalog
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue

pytestmark = pytest.mark.integration

T0 = time.time() - 86400


@pytest.fixture(scope="module")
def catalog():
    return make_catalog(n_categories=6, items_per_category=30, seed=3)


@pytest.fixture(scope="module")
def running(stack, catalog, tmp_path_factory):
    """A worker and a trainer with the catalogue encoded, and collectors on the output topics.

    Shared by the tests of this module (a worker takes seconds to start); each test uses its own users.
    """
    root = tmp_path_factory.mktemp("pipeline")
    settings = stack.isolated_settings(root, half_lives_s=(300.0, 30 * 86400.0), half_life_weights=(0.7, 0.3),
                                       snapshot_interval_s=1.0, learned_interval=12)
    worker = start_worker(settings, root / "worker.log", loglevel="info")
    trainer = start_worker(settings, root / "trainer.log", loglevel="info", command="trainer")
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    dlq = Collector(stack.bootstrap_servers, settings.dlq_topic)
    try:
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 90, worker, root / "worker.log")
        yield settings, recs, dlq, root
    finally:
        recs.close()
        dlq.close()
        stop_worker(worker)
        stop_worker(trainer)


def of_user(records: list[dict], user: str) -> list[dict]:
    return [r for r in records if r is not None and r["user_id"] == user]


def events_for(user: str, items: list[dict], start: float, step: float = 120.0, prefix: str = "e"):
    return [{"event_id": f"{prefix}{n}", "user_id": user, "item_id": item["item_id"], "type": "click",
             "ts": start + n * step, "scene": "home", "query": None} for n, item in enumerate(items)]


def on_category(rec: dict, by_id: dict, category: str) -> float:
    return sum(by_id[i["item_id"]]["category"] == category for i in rec["items"]) / len(rec["items"])


def test_recommendations_follow_a_users_interest_and_its_switch(running, stack, catalog):
    settings, recs, _, _ = running
    by_id = {i["item_id"]: i for i in catalog}
    first, second = catalog[0]["category"], catalog[-1]["category"]
    a_items = [i for i in catalog if i["category"] == first][:8]
    b_items = [i for i in catalog if i["category"] == second][:5]

    produce(stack.bootstrap_servers, settings.events_topic, events_for("alice", a_items, T0))
    got = wait_user(recs, "alice", 8)
    assert [r["event_id"] for r in got] == [f"e{n}" for n in range(8)]  # one per event, in order
    last = got[-1]
    assert last["user_id"] == "alice" and len(last["items"]) == settings.model.top_k
    assert on_category(last, by_id, first) >= 0.8
    assert all(i["reason"] for i in last["items"])
    assert {"model_version", "event_ts", "ingest_ts", "sent_ts"} <= set(last)
    assert not {i["item_id"] for i in last["items"]} & {i["item_id"] for i in a_items}

    produce(stack.bootstrap_servers, settings.events_topic,
            events_for("alice", b_items, T0 + 8 * 120, prefix="s"))
    switched = wait_user(recs, "alice", 13)[8:]
    shares = [on_category(r, by_id, second) for r in switched]
    assert shares[-1] >= 0.6, shares  # the short-term interest has taken over within five events
    # ... rising all the way, give or take one item of ten (the ranker and item space learn meanwhile)
    assert all(later >= earlier - 0.1 for earlier, later in zip(shares, shares[1:])), shares


def test_bad_input_goes_to_the_dlq_and_the_worker_keeps_going(running, stack, catalog):
    settings, recs, dlq, _ = running
    item = catalog[0]["item_id"]
    good = events_for("bob", [catalog[0], catalog[1]], T0)
    malformed = {"event_id": "x1", "user_id": "bob", "item_id": item, "type": "like", "ts": T0, "scene": "home"}
    produce(stack.bootstrap_servers, settings.events_topic, [good[0], malformed, b"{not json", good[1]])
    dead = [d for d in dlq.wait(2) if d["payload"] == "{not json" or "bob" in d["payload"]]
    assert sorted(d["reason"] for d in dead) == ["not_json", "unknown_event_type"]
    assert any(d["payload"] == "{not json" for d in dead)
    assert all(d["topic"] == settings.events_topic and d["error"] for d in dead)
    answered = [r["event_id"] for r in wait_user(recs, "bob", 2)]
    assert answered == ["e0", "e1"]


def test_huge_payloads_never_stop_the_worker(running, stack, catalog):
    """The reported crash: dead letters too large to send stopped the agent, and its batch went unanswered."""
    settings, recs, dlq, _ = running
    good = events_for("hugh", catalog[:3], T0)
    huge_json = {**good[0], "event_id": "huge", "extra": "x" * 1_000_000}
    produce(stack.bootstrap_servers, settings.events_topic, [good[0], b"\x01" * 200_000, huge_json, good[1]],
            max_request_size=4_000_000)
    huge_item = {"item_id": "huge-item", "title": "Huge", "category": "x", "text": "x" * 1_000_000}
    produce(stack.bootstrap_servers, settings.items_topic, [huge_item], key=lambda i: i["item_id"],
            max_request_size=4_000_000)
    produce(stack.bootstrap_servers, settings.events_topic, [good[2]])  # after the item: the worker is still up
    assert [r["event_id"] for r in wait_user(recs, "hugh", 3)] == ["e0", "e1", "e2"]
    wait_for(lambda: sum(d is not None and d.get("payload_bytes", 0) >= 200_000 for d in dlq.records) >= 3, 30,
             "three bounded dead letters")
    big = [d for d in dlq.records if d is not None and d.get("payload_bytes", 0) >= 200_000]
    assert {d["topic"] for d in big} == {settings.events_topic, settings.items_topic}
    assert all(d["payload_truncated"] and len(orjson.dumps(d)) <= settings.dead_letter_max_bytes for d in big)


def wait_user(collector: Collector, user: str, n: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(of_user(collector.records, user)) < n:
        assert time.monotonic() < deadline, f"only {len(of_user(collector.records, user))} of {n} for {user}"
        time.sleep(0.05)
    return of_user(collector.records, user)


def test_the_ranker_learns_from_feedback_and_workers_hot_swap_it(running, stack, catalog):
    """Feedback → trainer → snapshot in Redis → the worker serves it: later lists carry its version."""
    settings, recs, _, _ = running
    by_category: dict[str, list[dict]] = {}
    for item in catalog:
        by_category.setdefault(item["category"], []).append(item)
    users = [f"learner{n}" for n in range(6)]
    for n, user in enumerate(users):
        items = list(by_category.values())[n % len(by_category)][:6]
        produce(stack.bootstrap_servers, settings.events_topic, events_for(user, items, T0, prefix=f"{user}-"))
    for user in users:
        wait_user(recs, user, 6)
    r = redis.Redis.from_url(stack.redis_url)
    wait_for(lambda: r.get(settings.redis_prefix + "ranker:version") is not None, 30, "a ranker snapshot")
    version = int(r.get(settings.redis_prefix + "ranker:version"))
    assert version > 0
    # The worker polls Redis every second: a later event is answered by the new ranker.
    late = [{"event_id": f"late{n}", "user_id": "late", "item_id": catalog[n]["item_id"], "type": "view",
             "ts": T0 + 10_000 + n, "scene": "home", "query": None} for n in range(3)]
    time.sleep(2 * settings.item_sync_interval_s)
    produce(stack.bootstrap_servers, settings.events_topic, late)
    answered = wait_user(recs, "late", 3)
    assert answered[-1]["model_version"] >= version


def test_the_trainer_learns_an_item_space_and_workers_hot_swap_it(running, stack, catalog):
    """Next-item examples on feedback → the trainer's item space in Redis → the worker serves that version."""
    settings, recs, _, root = running
    users = [f"walker{n}" for n in range(4)]
    for n, user in enumerate(users):  # each walks a slice of the catalogue: 7 examples per user
        produce(stack.bootstrap_servers, settings.events_topic,
                events_for(user, catalog[10 * n: 10 * n + 8], T0 + 50_000, prefix=f"{user}-"))
    for user in users:
        wait_user(recs, user, 8)
    r = redis.Redis.from_url(stack.redis_url)
    key = settings.redis_prefix + "item_space:version"
    wait_for(lambda: int(r.get(key) or 0) >= 1, 30, "an item space snapshot")
    log = root / "worker.log"

    def served() -> list[int]:
        return [int(v) for v in re.findall(r"serving item space version (\d+)", log.read_text())]

    wait_for(lambda: bool(served()), 30, "the worker to serve the trainer's item space")
    assert min(served()) >= 1
