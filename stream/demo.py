"""``streamrec demo``: the whole loop on one machine, watched from the outside like a client app would.

1. start the local stack (Tansu broker + redis-server) and a worker process;
2. publish a generated catalogue to ``items`` and wait until the worker has encoded it;
3. publish events from simulated users whose interests drift (plus a few bad
   payloads, to show the dead-letter topic at work);
4. subscribe to ``recommendations`` and ``events.dlq``, print them live;
5. print what was measured, and shut everything down.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from model.datasets.synthetic import DriftingUsers, make_catalog
from stream.harness import Collector, start_worker, stop_worker, wait_for, wait_for_catalogue
from stream.settings import Settings
from stream.stack import LocalStack
from stream.topics import ensure_topics, topic_specs

BAD_PAYLOADS = [
    b"this is not json",
    b'{"event_id": "bad-1", "user_id": "u1", "item_id": "i0001", "type": "like", "ts": 1700000000, "scene": "home"}',
    b'{"event_id": "bad-2", "user_id": "u1", "type": "click", "ts": 1700000000, "scene": "home"}',
]


@dataclasses.dataclass
class Watch:
    """What the client side saw: fed by the collectors' callbacks, read by :func:`report`."""

    #: Item id → category, to tell whether a list follows the user's current interest.
    category: dict[str, str]
    sent_at: dict[str, float] = dataclasses.field(default_factory=dict)
    interest_at: dict[str, str] = dataclasses.field(default_factory=dict)
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    #: The same latency cut at the worker's clock: (to the worker, in the worker, back to the client).
    stages_ms: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    on_interest: list[float] = dataclasses.field(default_factory=list)
    received: int = 0
    #: The model version of each recommendation, to show the ranker being swapped in.
    versions: list[int] = dataclasses.field(default_factory=list)
    #: Items recommended after each event, and every event as published (user, event id, item).
    rec_items: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    published: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    dead: Counter = dataclasses.field(default_factory=Counter)
    last_print: float = 0.0

    def on_recommendation(self, body: dict | None) -> None:
        if body is None:  # a tombstone: some user was forgotten
            return
        now = time.time()
        self.received += 1
        self.versions.append(body["model_version"])
        event_id = body["event_id"]
        if event_id in self.sent_at:
            sent = self.sent_at[event_id]
            self.latencies_ms.append((now - sent) * 1000)
            self.stages_ms.append(((body["received_ts"] - sent) * 1000, (body["sent_ts"] - body["received_ts"]) * 1000,
                                   (now - body["sent_ts"]) * 1000))
        truth = self.interest_at.get(event_id)
        items = body["items"]
        self.rec_items[event_id] = {i["item_id"] for i in items}
        if truth and items:
            self.on_interest.append(sum(self.category[i["item_id"]] == truth for i in items) / len(items))
        if now - self.last_print > 1.0 and items:
            self.last_print = now
            tqdm.write(f"{body['user_id']} (now into {truth}) after {event_id}:")
            for i in items[:3]:
                tqdm.write(f"    {i['title'][:40]:<40} {self.category[i['item_id']][:18]:<18} {i['reason']}")

    def on_dead_letter(self, body: dict) -> None:
        self.dead[body["reason"]] += 1
        tqdm.write(f"  DLQ  {body['reason']:<20} {body['error'][:60]!r}")

    def next_item_hits(self) -> list[bool]:
        """For each event after a user's first: was its item in the list sent after their previous one?"""
        previous: dict[str, str] = {}
        hits = []
        for user, event_id, item in self.published:
            if user in previous and previous[user] in self.rec_items:
                hits.append(item in self.rec_items[previous[user]])
            previous[user] = event_id
        return hits


def run_demo(users: int = 40, events: int = 3000, rate: float = 200.0, seed: int = 0) -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-demo-"))
    catalog = make_catalog(items_per_category=40, seed=seed)
    category = {item["item_id"]: item["category"] for item in catalog}
    n_categories = len(set(category.values()))
    print(f"streamrec demo: {len(catalog)} items in {n_categories} categories, {users} users, "
          f"{events} events at {rate:.0f}/s (logs in {workdir})")

    with LocalStack(workdir) as stack:
        settings = dataclasses.replace(Settings(), broker=stack.broker, redis_url=stack.redis_url,
                                       data_dir=str(workdir / "worker"), partitions=4, snapshot_interval_s=2.0)
        ensure_topics(stack.bootstrap_servers, topic_specs(settings))
        print(f"local stack up: broker {stack.broker}, redis {stack.redis_url}")
        worker_log = workdir / "worker.log"
        worker = start_worker(settings, worker_log)
        trainer = start_worker(settings, workdir / "trainer.log", command="trainer")
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=5)
        watch = Watch(category)
        # The client app: subscribed to recommendations and the DLQ, printing a sample live.
        clients = [Collector(stack.bootstrap_servers, settings.recommendations_topic,
                             fetch_max_wait_ms=settings.fetch_max_wait_ms, on_record=watch.on_recommendation),
                   Collector(stack.bootstrap_servers, settings.dlq_topic,
                             fetch_max_wait_ms=settings.fetch_max_wait_ms, on_record=watch.on_dead_letter)]
        try:
            for item in catalog:
                producer.send(settings.items_topic, key=item["item_id"].encode(), value=orjson.dumps(item))
            producer.flush()
            with tqdm(total=len(catalog), desc="worker encoding catalogue", unit="item", mininterval=0.5) as bar:
                wait_for_catalogue(settings, len(catalog), 90, worker, worker_log,
                                   progress=lambda n: bar.update(n - bar.n))

            sim = DriftingUsers(catalog, n_users=users, seed=seed, mean_gap_s=5.0,
                                start_ts=time.time() - events * 5.0)
            t0 = time.monotonic()
            for n, event in enumerate(sim.events(events)):
                watch.interest_at[event["event_id"]] = sim.interest(event["user_id"])
                watch.published.append((event["user_id"], event["event_id"], event["item_id"]))
                watch.sent_at[event["event_id"]] = time.time()
                producer.send(settings.events_topic, key=event["user_id"].encode(), value=orjson.dumps(event))
                if n == events // 2:
                    for bad in BAD_PAYLOADS:
                        producer.send(settings.events_topic, key=b"u1", value=bad)
                lag = t0 + (n + 1) / rate - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
            producer.flush()
            produce_s = time.monotonic() - t0
            wait_for(lambda: watch.received >= events and sum(watch.dead.values()) >= len(BAD_PAYLOADS),
                     60, "every recommendation", worker, worker_log)
            total_s = time.monotonic() - t0
        finally:
            for client in clients:
                client.close()
            producer.close()
            stop_worker(worker)
            stop_worker(trainer)
    report(watch, events, produce_s, total_s, n_categories, time.monotonic() - started)
    return 0


def report(watch: Watch, events: int, produce_s: float, total_s: float, n_categories: int,
           wall_s: float) -> None:
    lat = sorted(watch.latencies_ms) or [float("nan")]
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    on = statistics.fmean(watch.on_interest) if watch.on_interest else float("nan")
    half = len(watch.on_interest) // 2
    hits = watch.next_item_hits()
    print("\n== what the demo measured")
    rows = [
        ("events published", f"{events}"),
        ("recommendations received", f"{watch.received}"),
        ("dead-lettered (reasons)", ", ".join(f"{k}={v}" for k, v in sorted(watch.dead.items())) or "none"),
        ("events/s (publish → last recommendation)", f"{events / total_s:,.0f}"),
        ("event → recommendation latency p50 / p99", f"{q[49]:.1f} ms / {q[98]:.1f} ms"),
        ("  of which to worker / in worker / to client (p50)",
         " / ".join(f"{statistics.median(s[i] for s in watch.stages_ms):.1f} ms" for i in range(3))
         if watch.stages_ms else "n/a"),
        ("top-k items in the user's current interest", f"{on:.1%} (random: {1 / n_categories:.1%})"),
        ("  first half / second half of the stream",
         f"{statistics.fmean(watch.on_interest[:half] or [0]):.1%} / "
         f"{statistics.fmean(watch.on_interest[half:] or [0]):.1%}"),
        ("next item in the list shown (HR@10), 1st / 2nd half",
         f"{statistics.fmean(hits[:len(hits) // 2] or [0]):.1%} / "
         f"{statistics.fmean(hits[len(hits) // 2:] or [0]):.1%}"),
        ("ranker version serving at the start / end",
         f"{watch.versions[0]} / {watch.versions[-1]}" if watch.versions else "n/a"),
        ("demo wall time", f"{wall_s:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
