"""A user's state has one owner: events keyed by anything but their user_id are re-keyed to it.

With two workers, events whose message key is some other value, empty or
missing would otherwise land on a partition that does not own their user,
and two workers would read, change and write the same state (the issue this
fixes: 189 of 300 events applied with keys rotating over 8 values, 180 with
no key). Now they are forwarded to ``events.rekeyed`` keyed by their user and
applied there once, by the owner; a forward repeated after a crash is
recognised by the origin it carries.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from model.datasets.synthetic import make_catalog
from stream.codec import Message, origin_of, partition_of
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue
from stream.processor import StreamProcessor
from stream.store import RedisStore

pytestmark = pytest.mark.integration

T0 = time.time() - 86400


async def hashed_vectors(texts):
    return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]).astype(np.float32)


def click(user: str, n: int, item: str) -> bytes:
    return orjson.dumps({"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "type": "click",
                         "ts": T0 + n, "scene": "home"})


def test_a_misplaced_event_is_forwarded_and_applied_once_by_its_owner(make_settings):
    settings = make_settings(partitions=4)
    proc = StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), hashed_vectors, 8)
    try:
        catalog = make_catalog(n_categories=1, items_per_category=4)
        asyncio.run(proc.handle_items([Message(i["item_id"].encode(), orjson.dumps(i)) for i in catalog]))
        owner = partition_of(b"ann", 4)
        elsewhere = (owner + 1) % 4
        batch = [Message(b"ann", click("ann", 0, "i0001"), owner, 10),            # right key, right partition
                 Message(b"bob", click("ann", 1, "i0002"), elsewhere, 11),        # another user's key
                 Message(None, click("ann", 2, "i0003"), elsewhere, 12),          # no key
                 Message(b"", click("ann", 3, "i0004"), elsewhere, 13),           # empty key
                 Message(b"ann", click("ann", 4, "i0001"), elsewhere, 14)]        # keyed right, wrong partition
        out = asyncio.run(proc.handle_events(batch, rekey=True))
        assert [orjson.loads(r.value)["event_id"] for r in out.recommendations] == ["ann-0"]
        assert [f.key for f in out.forwards] == [b"ann"] * 4
        assert [origin_of(f.headers) for f in out.forwards] == [(elsewhere, o) for o in (11, 12, 13, 14)]
        # The owner consumes the forwards from events.rekeyed (any offsets there), twice: a crash
        # between forwarding and committing forwards them again.
        again = [Message(f.key, f.value, owner, n, origin=origin_of(f.headers)) for n, f in enumerate(out.forwards)]
        answered = [asyncio.run(proc.handle_events(again)).recommendations for _ in range(2)]
        assert [len(a) for a in answered] == [4, 4]                # answered each time...
        (state,) = proc.store.load_users(["ann"], 8, settings.model.half_lives_s).values()
        assert state.n_events == 5                                 # ...applied once
    finally:
        proc.close()


def test_two_workers_apply_every_event_once_whatever_its_key(stack, tmp_path):
    settings = stack.isolated_settings(tmp_path, partitions=2)
    logs = [tmp_path / f"worker{w}.log" for w in range(2)]
    workers = [start_worker(settings, log, loglevel="info") for log in logs]
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    try:
        catalog = make_catalog(n_categories=2, items_per_category=10)
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 90, workers[0], logs[0])
        # Both workers in the group, each with a partition of events: two owners at once.
        for worker, log in zip(workers, logs):
            wait_for(lambda log=log: "_on_partitions_assigned" in log.read_text(errors="replace"), 60,
                     "both workers assigned", worker, log)
        items = [i["item_id"] for i in catalog]
        keys = {"rotating": lambda n: f"key-{n % 8}".encode(), "none": lambda n: None, "empty": lambda n: b""}
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=2)
        for n in range(300):
            for user, key in keys.items():
                producer.send(settings.events_topic, key=key(n), value=click(user, n, items[n % len(items)]))
        producer.flush()
        producer.close()
        wanted = {f"{user}-{n}" for user in keys for n in range(300)}
        wait_for(lambda: wanted <= {r["event_id"] for r in recs.records if r}, 120, "every event answered",
                 workers[0], logs[0])
        store = RedisStore(settings.redis_url, settings.redis_prefix)
        states = store.load_users(list(keys), 384, settings.model.half_lives_s)
        assert {user: s.n_events for user, s in states.items()} == {user: 300 for user in keys}
    finally:
        recs.close()
        for worker in workers:
            stop_worker(worker)


def test_only_a_forward_may_say_where_it_came_from():
    """An app setting the origin header on events must not choose the position its events are fenced by."""
    from types import SimpleNamespace

    from stream.codec import ORIGIN_HEADER
    from stream.faustapp import as_message

    record = SimpleNamespace(message=SimpleNamespace(key=b"u1", value=b"{}", partition=1, offset=7, timestamp=0.0,
                                                     headers=[(ORIGIN_HEADER, b"0:999999")]))
    assert as_message(record).position == (1, 7)                     # read from events: the header is ignored
    assert as_message(record, forwarded=True).position == (0, 999999)  # read from events.rekeyed: it counts
