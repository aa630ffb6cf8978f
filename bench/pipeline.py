"""Open-loop load through the real pipeline: events/s and event → recommendation latency.

LocalStack (Tansu broker + redis-server) and one ``streamrec worker`` process
(``stream.demo.start_worker``) with a synthetic catalogue encoded; a producer
thread sends events at fixed rates (keyed by user, real-time timestamps, the
schedule never waits for answers: open loop), a consumer thread reads
``recommendations`` (fetch_max_wait_ms=10). Per rate: offered, achieved
(answered / elapsed), latency p50/p95/p99 (producer send → consumer receive,
same clock), plus a burst (everything at once) that measures saturation.

Beside it, the same load through ``bench/passthrough_app.py`` (a Faust worker
forwarding events unchanged, same settings and transport), each on a fresh
stack, and our ratio to it.

    .venv/bin/python bench/pipeline.py            # ~3 min on 2 CPU cores
    .venv/bin/python bench/pipeline.py --quick    # ~40 s (two stacks, two workers to start)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from tqdm import tqdm  # noqa: E402

from model.datasets.synthetic import DriftingUsers, make_catalog  # noqa: E402
from stream.harness import Collector, start_worker, stop_worker, wait_for_catalogue  # noqa: E402
from stream.settings import Settings  # noqa: E402
from stream.stack import LocalStack  # noqa: E402
from stream.topics import ensure_topics, topic_specs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PASSTHROUGH_TOPIC = "passthrough.out"
TARGET_EPS = 5_000
TARGET_P99_MS = 50.0


def start_passthrough(settings: Settings, log_path: Path):
    """The pass-through Faust agent (bench/passthrough_app.py) as a worker process."""
    return start_worker(settings, log_path, argv=[str(ROOT / "bench" / "passthrough_app.py"), "worker", "-l", "warn",
                                                  "--without-web"])


class AnswerTimes:
    """What the client app records of every answer, by event id: when it arrived, and time in the worker."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.in_worker: dict[str, float] = {}

    def __call__(self, body: dict | None) -> None:
        if body is None:
            return
        self.received[body["event_id"]] = time.time()
        if "received_ts" in body and "sent_ts" in body:  # streamrec's own stamps (worker clock)
            self.in_worker[body["event_id"]] = body["sent_ts"] - body["received_ts"]


def produce(producer: KafkaProducer, topic: str, sim: DriftingUsers, tag: str, rate: float | None,
            n: int, sent: dict[str, float], bar: tqdm) -> None:
    """Send ``n`` events at ``rate``/s on a fixed schedule (rate None: as fast as possible)."""
    t0 = time.monotonic()
    for i, event in enumerate(sim.events(n)):
        if rate is not None:
            lag = t0 + i / rate - time.monotonic()
            if lag > 0:
                time.sleep(lag)
        event["event_id"] = f"{tag}-{i}"
        now = time.time()
        event["ts"] = round(now, 3)
        sent[event["event_id"]] = now
        producer.send(topic, key=event["user_id"].encode(), value=orjson.dumps(event))
        if i % 256 == 0:
            bar.update(i - bar.n)
    producer.flush()
    bar.update(n - bar.n)


def one_rate(producer, collector: AnswerTimes, topic: str, sim, tag: str, rate: float | None, n: int,
             drain_s: float, stall_s: float = 5.0) -> dict:
    sent: dict[str, float] = {}
    label = "burst" if rate is None else f"{rate:g}/s"
    with tqdm(total=n, desc=f"  {tag} {label}", unit="ev", leave=False, mininterval=0.5) as bar:
        thread = threading.Thread(target=produce, args=(producer, topic, sim, tag, rate, n, sent, bar))
        thread.start()
        thread.join()
    produced_at = time.time()
    # Wait for the answers: until all came, or none came for stall_s, or drain_s ran out.
    last_count, last_change = -1, time.monotonic()
    while True:
        got = sum(1 for e in sent if e in collector.received)
        if got >= n:
            break
        if got != last_count:
            last_count, last_change = got, time.monotonic()
        if time.monotonic() - last_change > stall_s or time.time() - produced_at > drain_s:
            break
        time.sleep(0.1)
    first_send = min(sent.values())
    lat = np.array([(collector.received[e] - t) * 1000 if e in collector.received else math.inf
                    for e, t in sent.items()])
    answered = int(np.isfinite(lat).sum())
    last_recv = max((collector.received[e] for e in sent if e in collector.received), default=first_send)
    elapsed = max(last_recv - first_send, 1e-9)

    def pct(q):  # unanswered events count as infinitely late
        return float(np.percentile(lat, q, method="higher"))

    inside = [collector.in_worker[e] * 1000 for e in sent if e in collector.in_worker]
    return {"rate": rate, "sent": n, "answered": answered,
            "in_worker_p50_ms": float(np.median(inside)) if inside else float("nan"),
            "offered_per_s": n / max(produced_at - first_send, 1e-9) if rate is None else rate,
            "achieved_per_s": answered / elapsed, "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


def measure(system: str, rates: list[float | None], duration_s: float, burst_n: int, *, partitions: int = 4,
            workers: int = 1, items_per_category: int = 40, users: int = 200, drain_s: float = 60.0,
            settle_s: float = 30.0) -> list[dict]:
    """Run ``rates`` (None: a burst of ``burst_n``) through ``system``.

    ``streamrec``; ``streamrec-own-pairs``, the same with each worker's item-item counts in its
    own memory (no Redis reads or writes for them: what sharing them costs); ``passthrough``.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"streamrec-bench-{system}-"))
    catalog = make_catalog(items_per_category=items_per_category, seed=0)
    rows = []
    with LocalStack(workdir) as stack:
        settings = dataclasses.replace(Settings(), broker=stack.broker, redis_url=stack.redis_url,
                                       data_dir=str(workdir / "worker"), partitions=partitions,
                                       shared_pairs=system != "streamrec-own-pairs")
        ours = system.startswith("streamrec")
        ensure_topics(stack.bootstrap_servers,
                      topic_specs(settings, extra=[(PASSTHROUGH_TOPIC, partitions, {})]))
        procs = []
        logs = []
        try:
            for w in range(workers):
                log = workdir / f"{system}-{w}.log"
                logs.append(log)
                procs.append(start_worker(settings, log) if ours else start_passthrough(settings, log))
            producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=5)
            out_topic = settings.recommendations_topic if ours else PASSTHROUGH_TOPIC
            collector = AnswerTimes()
            client = Collector(stack.bootstrap_servers, out_topic, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                               on_record=collector)
            if ours:
                for item in catalog:
                    producer.send(settings.items_topic, key=item["item_id"].encode(), value=orjson.dumps(item))
                producer.flush()
                wait_for_catalogue(settings, len(catalog), 180, procs[0], logs[0])
            if workers > 1:
                group = settings.app_id if ours else settings.app_id + "-passthrough"
                members = wait_group(stack.bootstrap_servers, group, workers, settle_s)
                tqdm.write(f"  {system}: consumer group {group!r} has {members} members")
            sim = DriftingUsers(catalog, n_users=users, seed=0)
            # Warm-up: the consumer group must have joined and every code path been taken once.
            warm = one_rate(producer, collector, settings.events_topic, sim, f"{system}-warm", 50.0,
                            100, drain_s=60, stall_s=30)
            if warm["answered"] < warm["sent"]:
                raise RuntimeError(f"{system}: warm-up got {warm['answered']}/{warm['sent']} answers; "
                                   f"see {logs[0]}")
            for rate in rates:
                n = burst_n if rate is None else max(int(rate * duration_s), 1)
                row = one_rate(producer, collector, settings.events_topic, sim, f"{system}-{rate}", rate, n,
                               drain_s)
                row.update(system=system, workers=workers, partitions=partitions)
                rows.append(row)
                tqdm.write(f"  {system:<11} {'burst' if rate is None else f'{rate:g}/s':>8}: "
                           f"achieved {row['achieved_per_s']:,.0f}/s, p99 {fmt_ms(row['p99_ms'])} "
                           f"({row['answered']}/{row['sent']} answered)")
            client.close()
            producer.close()
        finally:
            for proc in procs:
                stop_worker(proc)
    return rows


def wait_group(bootstrap: str, group: str, members: int, timeout: float) -> int | str:
    """Wait until ``group`` has ``members`` members and is Stable (best effort; else sleep a rebalance)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-group-watch")
    deadline = time.monotonic() + timeout
    seen: int | str = "?"
    try:
        while time.monotonic() < deadline:
            try:
                desc = admin.describe_groups([group])[0]
                get = desc.get if isinstance(desc, dict) else lambda k, d=None, desc=desc: getattr(desc, k, d)
                seen = len(get("members", []) or [])
                if seen >= members and str(get("state", "Stable")).lower() == "stable":
                    time.sleep(2.0)  # let the assignment reach every member
                    return seen
            except Exception as exc:  # noqa: BLE001  broker without DescribeGroups: just wait
                tqdm.write(f"  describe_groups failed ({exc!r}); sleeping {timeout:.0f} s for the rebalance")
                time.sleep(max(deadline - time.monotonic(), 0))
                return "unknown"
            time.sleep(0.5)
    finally:
        admin.close()
    return seen


def fmt_ms(x: float) -> str:
    return "unanswered" if math.isinf(x) else "n/a" if x != x else f"{x:,.1f}"


def saturation(rows: list[dict]) -> float:
    """Highest throughput seen (the burst measures it directly)."""
    return max((r["achieved_per_s"] for r in rows), default=float("nan"))


def print_tables(ours: list[dict], base: list[dict]) -> None:
    by_rate = {r["rate"]: r for r in base}
    print("| offered ev/s | streamrec achieved ev/s | p50 ms | p95 ms | p99 ms | in worker p50 ms | answered "
          "| pass-through achieved ev/s | p50 ms | p99 ms | achieved ratio | target |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in ours:
        b = by_rate.get(r["rate"])
        label = f"burst ({r['offered_per_s']:,.0f})" if r["rate"] is None else f"{r['rate']:,.0f}"
        target = (f"p99 ≤ {TARGET_P99_MS:.0f} ms" if r["rate"] == 1000 else
                  f"≥ {TARGET_EPS:,} ev/s" if r["rate"] is None else "")
        bcols = (f"{b['achieved_per_s']:,.0f} | {fmt_ms(b['p50_ms'])} | {fmt_ms(b['p99_ms'])} "
                 f"| {r['achieved_per_s'] / b['achieved_per_s']:.2f}" if b else "n/a | n/a | n/a | n/a")
        print(f"| {label} | {r['achieved_per_s']:,.0f} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p95_ms'])} "
              f"| {fmt_ms(r['p99_ms'])} | {fmt_ms(r['in_worker_p50_ms'])} | {r['answered']}/{r['sent']} "
              f"| {bcols} | {target} |")
    s_ours, s_base = saturation(ours), saturation(base)
    print(f"\nsaturation (highest achieved): streamrec {s_ours:,.0f} ev/s, pass-through {s_base:,.0f} ev/s "
          f"(ratio {s_ours / s_base:.2f}); target ≥ {TARGET_EPS:,} ev/s sustained")


def print_sharing(shared: list[dict], own: list[dict], base: list[dict]) -> None:
    """What the shared item-item counts cost: a read of the seeds' rows (cached for a second) and the writes."""
    own_by, base_by = {r["rate"]: r for r in own}, {r["rate"]: r for r in base}
    print("\n| offered ev/s | shared pairs ev/s | p99 ms | each worker's own pairs ev/s | p99 ms "
          "| pass-through ev/s | p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in shared:
        o, b = own_by.get(r["rate"]), base_by.get(r["rate"])
        label = f"burst ({r['offered_per_s']:,.0f})" if r["rate"] is None else f"{r['rate']:,.0f}"
        cols = [f"{x['achieved_per_s']:,.0f} | {fmt_ms(x['p99_ms'])}" if x else "n/a | n/a" for x in (r, o, b)]
        print(f"| {label} | {' | '.join(cols)} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="100,300,1000,burst", help="events/s; 'burst' = all at once")
    p.add_argument("--duration-s", type=float, default=8.0, help="seconds per fixed rate")
    p.add_argument("--burst", type=int, default=4000, help="events in the burst")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--items-per-category", type=int, default=40, help="catalogue size = 24 × this")
    p.add_argument("--systems", default="streamrec,streamrec-own-pairs,passthrough")
    p.add_argument("--drain-s", type=float, default=60.0, help="most seconds to wait for answers after a rate")
    p.add_argument("--quick", action="store_true", help="~40 s run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.rates, args.duration_s, args.burst, args.items_per_category, args.drain_s = \
            "100,300,burst", 3.0, 800, 10, 20.0
    rates = [None if r.strip() == "burst" else float(r) for r in args.rates.split(",")]
    print(f"# pipeline benchmark: rates {args.rates} ({args.duration_s:g} s each, burst {args.burst}), "
          f"{args.partitions} partitions, {24 * args.items_per_category} items, 1 worker, "
          f"load avg {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    results = {}
    for system in args.systems.split(","):
        results[system] = measure(system, rates, args.duration_s, args.burst, partitions=args.partitions,
                                  items_per_category=args.items_per_category, drain_s=args.drain_s)
    print()
    print_tables(results.get("streamrec", []), results.get("passthrough", []))
    if results.get("streamrec") and results.get("streamrec-own-pairs"):
        print_sharing(results["streamrec"], results["streamrec-own-pairs"], results.get("passthrough", []))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
