"""One collaborative memory for every worker: item-item counts in Redis, against a real redis-server and broker."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import orjson
import pytest

from model.datasets.synthetic import make_catalog
from stream.codec import Message
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue
from stream.learning import Trainer
from stream.pairs import SharedPairs
from stream.processor import StreamProcessor
from stream.store import RedisStore


async def hashed_vectors(texts):
    """A deterministic stand-in for the text encoder: the encoder is not what these tests are about."""
    return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=16) for t in texts]).astype(np.float32)


def processor(settings) -> StreamProcessor:
    return StreamProcessor(settings, RedisStore(settings.redis_url, settings.redis_prefix), hashed_vectors, 16)


def index_catalog(proc: StreamProcessor, catalog: list[dict]) -> None:
    """Publish ``catalog`` to ``proc`` as the items topic would."""
    asyncio.run(proc.handle_items([Message(i["item_id"].encode(), orjson.dumps(i)) for i in catalog]))


def click(user: str, item: str, ts: float, n: int) -> dict:
    return {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "type": "click", "ts": ts, "scene": "home"}


def messages(events: list[dict], first_offset: int = 0) -> list[Message]:
    return [Message(e["user_id"].encode(), orjson.dumps(e), partition=0, offset=first_offset + n)
            for n, e in enumerate(events)]


def taught(catalog: list[dict], users: int = 12) -> tuple[dict, dict, list[dict]]:
    """Two items of different categories (their text does not relate them) that many users take one after the other."""
    first = catalog[0]
    then = next(i for i in catalog if i["category"] != first["category"])
    t = time.time() - 3600
    log = [click(f"teacher{u}", item["item_id"], t + 2 * u + k, k) for u in range(users) for k, item in
           enumerate((first, then))]
    return first, then, log


def covisit_reasons(answer: dict, then: dict) -> list[dict]:
    return [i for i in answer["items"] if i["item_id"] == then["item_id"] and i["source"] == "covisit"]


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "each-its-own"])
def test_a_worker_recommends_from_pairs_another_worker_counted(make_settings, shared):
    settings = make_settings(shared_pairs=shared, pair_cache_ttl_s=0.0)
    here, there = processor(settings), processor(settings)
    try:
        catalog = make_catalog(n_categories=4, items_per_category=6)
        index_catalog(here, catalog)
        asyncio.run(there.sync())
        first, then, log = taught(catalog)
        asyncio.run(here.handle_events(messages(log)))
        # A user whom only the other worker serves takes the first item.
        probe = click("probe", first["item_id"], time.time() - 60, 0)
        out = asyncio.run(there.handle_events([Message(b"probe", orjson.dumps(probe), partition=1, offset=0)]))
        answer = orjson.loads(out.recommendations[0].value)
        found = covisit_reasons(answer, then)
        if shared:
            assert found and first["title"] in found[0]["reason"], answer["items"]
        else:  # the baseline this replaces: the other worker never heard of the pair
            assert not found
    finally:
        here.close()
        there.close()


def test_the_shared_rows_equal_the_local_ones_to_the_bit_and_stay_bounded(make_settings):
    settings = make_settings(max_neighbours=3, pair_cache_ttl_s=0.0)
    proc = processor(settings)
    try:
        catalog = make_catalog(n_categories=3, items_per_category=8)
        index_catalog(proc, catalog)
        rng = np.random.default_rng(0)
        t = time.time() - 86400
        log = [click(f"u{rng.integers(10)}", catalog[rng.integers(len(catalog))]["item_id"], t + n, n)
               for n in range(600)]
        for start in range(0, len(log), 50):
            asyncio.run(proc.handle_events(messages(log[start:start + 50], start)))
        shared = proc.store.pair_rows()
        assert shared and max(len(row) for row in shared.values()) <= 2 * 3  # trimmed back to 3 at twice as many
        rec, ids = proc.recommender, proc.recommender.index.ids
        rows = rec.index.rows
        # Rows no longer over their bound in either copy are the same increments in the same order: identical.
        for (table, item), row in shared.items():
            local = rec.pair_counts(table).as_dict().get(rows[item], {})
            if len(row) <= 3 and len(local) <= 3:
                assert {ids[b]: v for b, v in local.items()} == row
    finally:
        proc.close()


def test_deleting_an_item_deletes_its_rows(make_settings):
    settings = make_settings(pair_cache_ttl_s=0.0)
    proc = processor(settings)
    try:
        catalog = make_catalog(n_categories=2, items_per_category=4)
        index_catalog(proc, catalog)
        first, then, log = taught(catalog, users=3)
        asyncio.run(proc.handle_events(messages(log)))
        assert ("covisit", first["item_id"]) in proc.store.pair_rows()
        asyncio.run(proc.handle_items([Message(first["item_id"].encode(), None)]))
        assert not [key for key in proc.store.pair_rows() if key[1] == first["item_id"]]
    finally:
        proc.close()


def test_after_a_sigkill_the_restarted_worker_keeps_the_co_visitation_reasons(stack, tmp_path):
    settings = stack.isolated_settings(tmp_path, partitions=1)
    log_path = tmp_path / "worker.log"
    worker = start_worker(settings, log_path)
    recs = Collector(stack.bootstrap_servers, settings.recommendations_topic)
    try:
        catalog = make_catalog(n_categories=4, items_per_category=6, seed=3)
        produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 90, worker, log_path)
        first, then, log = taught(catalog)
        produce(stack.bootstrap_servers, settings.events_topic, log)
        recs.wait(len(log))
        os.kill(worker.pid, signal.SIGKILL)  # no shutdown: whatever it held in memory is gone
        worker.wait()
        worker = start_worker(settings, log_path)
        probes = [click(f"probe{p}", first["item_id"], time.time() - 60, 0) for p in range(3)]
        produce(stack.bootstrap_servers, settings.events_topic, probes)
        # (Offsets were not committed: the teachers' events are answered again first, not applied again.)
        def probe_answers() -> list[dict]:
            return [r for r in list(recs.records) if r["user_id"].startswith("probe")]

        wait_for(lambda: len(probe_answers()) == len(probes), 90, "the probes' answers", worker, log_path)
        answers = probe_answers()
        assert all(covisit_reasons(a, then) for a in answers), [a["items"] for a in answers]
    finally:
        recs.close()
        stop_worker(worker)


def test_popularity_in_a_scene_and_in_a_user_stage_is_shared_too(make_settings):
    settings = make_settings()
    here, there = processor(settings), processor(settings)
    try:
        catalog = make_catalog(n_categories=2, items_per_category=4)
        index_catalog(here, catalog)
        asyncio.run(there.sync())
        hit, other = catalog[0]["item_id"], catalog[1]["item_id"]
        t = time.time() - 600
        log = [dict(click(f"fan{u}", hit, t + u, 0), scene="search") for u in range(10)]
        asyncio.run(here.handle_events(messages(log)))
        probe = dict(click("probe", other, t + 20, 0), scene="search")
        asyncio.run(there.handle_events([Message(b"probe", orjson.dumps(probe), partition=1, offset=0)]))
        asyncio.run(there.sync())
        search = there.recommender.segment_popularity["scene:search"]
        assert search.score(hit, t + 30) > search.score(other, t + 30) > 0
        first_events = there.recommender.segment_popularity["stage:0"]  # every fan's first event, counted here
        assert first_events.score(hit, t + 30) > first_events.score(other, t + 30) > 0
        assert there.recommender.popularity.score(hit, t + 30) > 0
    finally:
        here.close()
        there.close()


def test_the_counts_that_normalise_co_visitation_are_shared_once_each_and_survive_a_restart(make_settings):
    """The item-kNN normalisation divides by items' interaction counts: every worker's, not its own share."""
    settings = make_settings()
    here = processor(settings)
    catalog = make_catalog(n_categories=2, items_per_category=4)
    index_catalog(here, catalog)
    first, then, log = taught(catalog, users=12)
    asyncio.run(here.handle_events(messages(log)))
    asyncio.run(here.handle_events(messages(log)))  # redelivered: counted once
    assert here.recommender.popularity.count(first["item_id"]) == 12
    there = processor(settings)  # another worker, or this one restarted: it starts from every count so far
    try:
        asyncio.run(there.sync())
        assert there.recommender.popularity.count(first["item_id"]) == 12
        probe = click("probe", first["item_id"], time.time() - 60, 0)
        asyncio.run(there.handle_events([Message(b"probe", orjson.dumps(probe), partition=1, offset=0)]))
        asyncio.run(here.sync())
        assert here.recommender.popularity.count(first["item_id"]) == 13
        assert there.recommender.popularity.count(first["item_id"]) == 13
    finally:
        here.close()
        there.close()


def test_a_batch_fetches_a_bounded_number_of_rows_the_stalest_first(make_settings):
    settings = make_settings(pair_cache_ttl_s=0.0)
    proc = processor(settings)
    try:
        catalog = make_catalog(n_categories=2, items_per_category=5)
        index_catalog(proc, catalog)
        pairs = SharedPairs(proc.store, proc.recommender, ttl_s=0.0, max_fetch=4)
        ids = [i["item_id"] for i in catalog]
        assert pairs.refresh(ids, now=1.0) == 4 and set(pairs.fetched_at) == set(ids[:4])
        # Next batch: the six never fetched come first, four of them.
        assert pairs.refresh(ids, now=2.0) == 4 and set(pairs.fetched_at) == set(ids[:8])
        assert pairs.refresh(ids, now=3.0) == 4 and set(pairs.fetched_at) == set(ids)
        assert pairs.fetched_at[ids[0]] == 3.0  # then the stalest: the first four, fetched at 1.0
    finally:
        proc.close()


def test_the_item_space_reaches_every_worker_and_survives_a_trainer_restart(make_settings):
    """Workers' next-item examples → the trainer's item space in Redis → a worker's sync serves that version."""
    settings = make_settings(learned_interval=10)
    store = RedisStore(settings.redis_url, settings.redis_prefix)
    worker = processor(settings)
    try:
        catalog = make_catalog(n_categories=2, items_per_category=4)
        index_catalog(worker, catalog)
        ids = [i["item_id"] for i in catalog]
        t = time.time() - 3600
        log = [click(f"walker{u}", ids[(u + n) % len(ids)], t + 60 * n, n) for u in range(4) for n in range(5)]
        out = asyncio.run(worker.handle_events(messages(log)))
        feedback = [Message(f.key, f.value) for f in out.feedback]
        examples = [orjson.loads(f.value) for f in feedback if b'"context"' in f.value]
        assert len(examples) == 4 * 4  # every event after a user's first has a context
        trainer = Trainer(settings, store)
        assert trainer.learn(feedback) == []
        assert trainer.learner is not None and trainer.learner.version == 1  # one round: 16 examples, every 10
        trainer.snapshot()
        asyncio.run(worker.sync())
        served = worker.recommender.item_space
        assert served is not None and served.version == 1
        restarted = Trainer(settings, store)  # a new trainer (or this one after a crash) continues from Redis
        restarted.learn(feedback[:1])
        assert restarted.learner is not None and restarted.learner.version == 1
        vectors = worker.recommender.index.matrix[[worker.recommender.index.rows[i] for i in ids]]
        for ours, theirs in zip(served.embed(ids, vectors), restarted.learner.snapshot().embed(ids, vectors)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    finally:
        worker.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_rows_and_rankings_read_the_same_on_either_redis_protocol(make_settings, protocol):
    """The reads parse the wire's WITHSCORES replies themselves: RESP3's pairs and RESP2's flat list agree."""
    import redis

    from model.cooccurrence import PairCount

    settings = make_settings()
    client = redis.Redis.from_url(settings.redis_url, protocol=protocol)
    store = RedisStore(settings.redis_url, settings.redis_prefix, client=client)
    logs = {"b": 1.25, "c": 3.5, "d": -0.75}
    store.save_users([], popularity={"a": 2.0, "b": 0.5}, pairs=[PairCount("covisit", "a", n, v) for n, v in
                                                                  logs.items()],
                     segment_popularity={"scene:home": {"b": 4.0}})
    rows = store.load_pairs(["a", "zz"], 2)
    assert rows[("covisit", "a")] == [("c", 3.5), ("b", 1.25)]  # the strongest n, strongest first
    assert rows[("bundle", "a")] == [] and rows[("covisit", "zz")] == []
    assert store.top_popularity(5) == [("a", 2.0), ("b", 0.5)]
    assert store.top_segment_popularity(["scene:home", "scene:none"], 5) == {"scene:home": [("b", 4.0)],
                                                                           "scene:none": []}
    client.close()
