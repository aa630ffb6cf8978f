"""User deletion end to end: ``streamrec forget`` → the worker deletes every per-user key → a tombstone.

Real Tansu broker, real redis-server, a real worker process.
"""

from __future__ import annotations

import time

import orjson
import pytest

from model.datasets.synthetic import make_catalog
from stream import cli
from stream.codec import decode_forget, encode_forget
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue

pytestmark = pytest.mark.integration


def clicks(user: str, items: list[dict], start: float, prefix: str) -> list[dict]:
    return [{"event_id": f"{prefix}{n}", "user_id": user, "item_id": item["item_id"], "type": "click",
             "ts": start + 60 * n, "scene": "home", "query": None} for n, item in enumerate(items)]


def keys_of(redis_client, prefix: str) -> set[str]:
    return {k.decode() for k in redis_client.scan_iter(match=f"{prefix}*", count=1000)}


def test_forget_removes_every_trace_and_the_user_starts_afresh(make_settings, stack, redis_client, tmp_path,
                                                              monkeypatch):
    catalog = make_catalog(n_categories=3, items_per_category=6, seed=11)
    first, second = catalog[0]["category"], catalog[-1]["category"]
    settings = make_settings()
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path, loglevel="info")
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    dlq = Collector(stack.bootstrap_servers, settings.dlq_topic)
    try:
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 90, worker, log_path)
        start = time.time() - 3600
        carol_items = [i for i in catalog if i["category"] == first][:4]
        produce(stack.bootstrap_servers, settings.events_topic,
                clicks("carol", carol_items, start, "c") + clicks("dave", catalog[6:8], start, "d"))
        recs.wait(6)
        before = keys_of(redis_client, settings.redis_prefix)
        assert {f"{settings.redis_prefix}user:carol", f"{settings.redis_prefix}user:dave"} <= before

        # `streamrec forget carol`, as an operator would run it, plus a request no worker can act on.
        for name, value in settings.env().items():
            monkeypatch.setenv(name, value)
        assert cli.main(["forget", "carol"]) == 0
        produce(stack.bootstrap_servers, settings.forget_topic, [b'{"user": "carol"}'])

        wait_for(lambda: (b"carol", None) in zip(recs.keys, recs.records), 30, "the tombstone", worker, log_path)
        after = keys_of(redis_client, settings.redis_prefix)
        assert not [k for k in after if "carol" in k], after
        assert f"{settings.redis_prefix}user:dave" in after  # nobody else is touched
        dead = dlq.wait(1)
        assert dead[0]["topic"] == settings.forget_topic and dead[0]["reason"] == "missing_field"

        # Carol comes back: she starts from nothing, like a new user.
        new_item = next(i for i in catalog if i["category"] == second)
        produce(stack.bootstrap_servers, settings.events_topic, clicks("carol", [new_item], time.time() - 5, "n"))
        wait_for(lambda: any(r and r["event_id"] == "n0" for r in recs.records), 30, "carol's new list",
                 worker, log_path)
        state = redis_client.hgetall(f"{settings.redis_prefix}user:carol")
        assert int(state[b"n"]) == 1
        assert [item for item, _ in orjson.loads(state[b"seen"])] == [new_item["item_id"]]
        answer = next(r for r in recs.records if r and r["event_id"] == "n0")
        forgotten_titles = {i["title"] for i in carol_items}
        assert not [i["reason"] for i in answer["items"] if any(t in i["reason"] for t in forgotten_titles)]
    finally:
        recs.close()
        dlq.close()
        stop_worker(worker)


def test_forget_requests_are_validated_like_events():
    assert decode_forget(encode_forget("u-1")) == "u-1"
    with pytest.raises(ValueError, match="empty_field"):
        decode_forget(b'{"user_id": "  "}')
    assert cli.main(["forget", "bad\x00id"]) == 1  # the CLI refuses before publishing anything
