"""The catalogue as a compacted topic: every field change is stored, a tombstone deletes an item everywhere.

A deleted item disappears from candidates, reasons, Redis and every worker's
index within a sync interval, and stays deleted after a restart (the
compacted topic replays the item and then its tombstone).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from model.datasets.synthetic import make_catalog
from stream.codec import Message
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue
from stream.processor import StreamProcessor
from stream.store import RedisStore

pytestmark = pytest.mark.integration


class CountingEncoder:
    """A deterministic stand-in for the text encoder that counts the texts it encodes."""

    def __init__(self):
        self.texts: list[str] = []

    async def __call__(self, texts):
        self.texts += texts
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts]).astype(np.float32)


def items_batch(records):
    return [Message(r["item_id"].encode(), orjson.dumps(r)) if isinstance(r, dict) else Message(r, None)
            for r in records]


def test_a_tombstone_deletes_an_item_from_the_store_and_every_index(make_settings):
    settings = make_settings()
    encoder = CountingEncoder()
    store = RedisStore(settings.redis_url, settings.redis_prefix)
    here, there = (StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), encoder, 8)
                   for _ in range(2))
    try:
        catalog = make_catalog(n_categories=1, items_per_category=4)
        asyncio.run(here.handle_items(items_batch(catalog)))
        asyncio.run(there.sync())
        gone = catalog[0]["item_id"]
        assert gone in here.recommender.index and gone in there.recommender.index
        # Deleted, re-added and deleted again within one batch: the last record wins.
        dead = asyncio.run(here.handle_items(items_batch([gone.encode(), catalog[0], gone.encode()])))
        assert not dead and gone not in here.recommender.index
        assert store.redis.hget(store.key("item", "meta"), gone) is None
        assert store.redis.hget(store.key("item", "vec"), gone) is None
        asyncio.run(there.sync())
        assert gone not in there.recommender.index and store.catalogue_size() == 3
        # A worker starting now reads the catalogue without it.
        fresh = StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), encoder, 8)
        asyncio.run(fresh.sync())
        assert gone not in fresh.recommender.index and len(fresh.recommender.index) == 3
        fresh.close()
    finally:
        here.close()
        there.close()


def test_a_price_only_update_is_stored_without_encoding_again(make_settings):
    settings = make_settings()
    encoder = CountingEncoder()
    proc = StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), encoder, 8)
    try:
        catalog = make_catalog(n_categories=1, items_per_category=3)
        asyncio.run(proc.handle_items(items_batch(catalog)))
        encoded = len(encoder.texts)
        cheaper = {**catalog[1], "price": 1.99}
        asyncio.run(proc.handle_items(items_batch([cheaper])))
        assert len(encoder.texts) == encoded                     # the text did not change
        stored = orjson.loads(proc.store.redis.hget(proc.store.key("item", "meta"), cheaper["item_id"]))
        assert stored["price"] == 1.99 and proc.recommender.index.items[cheaper["item_id"]].price == 1.99
    finally:
        proc.close()


def test_a_deleted_item_is_never_recommended_again_even_after_a_restart(stack, tmp_path):
    settings = stack.isolated_settings(tmp_path, partitions=1, item_sync_interval_s=0.5)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    try:
        catalog = make_catalog(n_categories=3, items_per_category=8, seed=2)
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 90, worker, log)
        first = [i for i in catalog if i["category"] == catalog[0]["category"]]
        by_id = {i["item_id"]: i for i in catalog}

        def click(n, item, ts):
            return {"event_id": f"d{n}", "user_id": "dora", "item_id": item["item_id"], "type": "click",
                    "ts": ts, "scene": "home"}

        t = time.time() - 3600
        produce(stack.bootstrap_servers, settings.events_topic, [click(n, first[n], t + n) for n in range(3)])
        recs.wait(3)
        shown = [i["item_id"] for i in recs.records[-1]["items"]]
        doomed = by_id[shown[0]]
        tombstone = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
        tombstone.send(settings.items_topic, key=doomed["item_id"].encode(), value=None)
        tombstone.close()
        wait_for(lambda: RedisStore(settings.redis_url, settings.redis_prefix).catalogue_size() == len(catalog) - 1,
                 30, "the item deleted from Redis", worker, log)
        time.sleep(1.5)  # past a sync interval: every worker's index dropped it

        def named(answer):
            return [i for i in answer["items"] if i["item_id"] == doomed["item_id"] or doomed["title"] in i["reason"]]

        produce(stack.bootstrap_servers, settings.events_topic, [click(n, first[n], t + n) for n in range(3, 6)])
        recs.wait(6)
        assert not any(named(a) for a in recs.records[3:6])
        stop_worker(worker)
        worker = start_worker(settings, log)  # replays nothing new, reads the catalogue from Redis
        produce(stack.bootstrap_servers, settings.events_topic, [click(n, first[n % len(first)], t + n)
                                                                 for n in range(6, 9)])
        recs.wait(9, timeout=90)
        assert not any(named(a) for a in recs.records[6:9])
    finally:
        recs.close()
        stop_worker(worker)
