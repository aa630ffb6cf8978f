"""The soak: a million events through the worker's processor, memory sampled all along.

    .venv/bin/python bench/soak.py                      # 1,000,000 events, ~20-30 min on 2 cores
    .venv/bin/python bench/soak.py --events 50000       # a quick look

What runs is what a worker runs, minus Kafka: :class:`stream.processor.StreamProcessor`
with the real encoder, a real redis-server (from :class:`stream.stack.LocalStack`),
micro-batches of ``--batch`` messages carrying partitions and offsets as the
agent hands them over, and the replica sync the worker's timer runs. The broker
is left out so that a million events fit in one sitting (one worker through
Tansu does a few hundred events/s); Faust's and aiokafka's buffers are bounded
by their own settings and are not what this checks.

At every checkpoint it prints the worker's resident memory (RSS), Redis's
``used_memory``, the users stored and the size of every in-process structure
that grows with traffic (items indexed, popularity slots, co-visitation and
bundle rows and pairs, popularity segments), with malloc's in-use and free memory and
Python's allocated blocks to tell live growth from fragmentation. At the end it checks that every event was
applied exactly once (the sum of the users' event counts equals the events
sent) and answered, and plots memory over events to ``--out``/soak.png.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path

import orjson
import redis
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from model.datasets.synthetic import DriftingUsers, make_catalog  # noqa: E402
from model.encoder import MicroBatcher, TextEncoder  # noqa: E402
from model.threads import limit_blas_threads  # noqa: E402
from stream.codec import Message
from stream.processor import StreamProcessor  # noqa: E402
from stream.stack import LocalStack  # noqa: E402
from stream.store import RedisStore  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def malloc_mb() -> tuple[float, float]:
    """(in use, free but kept) by glibc's malloc, MB: tells a leak from fragmentation; NaN off glibc."""
    try:
        info = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return float("nan"), float("nan")
    info.restype = _MallInfo2
    m = info()
    return (m.uordblks + m.hblkhd) / 2**20, m.fordblks / 2**20


def sizes(processor: StreamProcessor, r: redis.Redis, prefix: str) -> dict:
    rec = processor.recommender
    info = r.info("memory")
    in_use, free = malloc_mb()
    return {
        "rss_mb": rss_mb(),
        "malloc_in_use_mb": in_use,
        "malloc_free_mb": free,
        "python_blocks": sys.getallocatedblocks(),
        "redis_mb": info["used_memory"] / 2**20,
        "users": sum(1 for _ in r.scan_iter(f"{prefix}user:*", count=10_000)),
        "items": len(rec.index),
        "popularity_slots": len(rec.popularity),
        "covisit_rows": len(rec.covisit),
        "covisit_pairs": rec.covisit.pairs(),
        "bundle_pairs": rec.bundles.pairs(),
        "segments": len(rec.segment_popularity),
        "pairs_redis_mb": processor.store.pair_memory_bytes() / 2**20,
    }


def messages(events, partitions: int):
    """Events as the agent hands them over: keyed by user, one partition per user, offsets in order."""
    offsets = [0] * partitions
    for event in events:
        partition = zlib.crc32(event["user_id"].encode()) % partitions
        yield Message(event["user_id"].encode(), orjson.dumps(event), partition, offsets[partition], time.time())
        offsets[partition] += 1


def main(argv=None) -> int:
    limit_blas_threads()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items-per-category", type=int, default=80, help="catalogue size = 24 × this")
    p.add_argument("--batch", type=int, default=256, help="messages per micro-batch (the worker's BATCH_MAX)")
    p.add_argument("--checkpoints", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("results/soak"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(items_per_category=args.items_per_category, seed=7)
    # Event times end about now: the schema rejects events from the future, and the user TTL counts from now.
    mean_gap_s = 3.0
    sim = DriftingUsers(catalog, n_users=args.users, seed=7, mean_gap_s=mean_gap_s,
                        start_ts=time.time() - 1.1 * mean_gap_s * args.events)
    every = max(args.events // args.checkpoints, 1)
    rows: list[dict] = []
    loop = asyncio.new_event_loop()
    with LocalStack(Path(tempfile.mkdtemp(prefix="streamrec-soak-"))) as stack:
        settings = stack.isolated_settings(Path(tempfile.mkdtemp(prefix="streamrec-soak-data-")), partitions=4)
        store = RedisStore(settings.redis_url, settings.redis_prefix, user_ttl_s=settings.user_ttl_s)
        encoder = TextEncoder(device=settings.encoder_device)
        with MicroBatcher(encoder.encode, settings.encoder_batch_for(encoder.device),
                          settings.encoder_wait_s) as batcher:
            processor = StreamProcessor(settings, store, batcher.encode_async, encoder.dim)
            r = redis.Redis.from_url(settings.redis_url)
            items = [Message(i["item_id"].encode(), orjson.dumps(i)) for i in catalog]
            loop.run_until_complete(processor.handle_items(items))
            print(f"# soak: {args.events:,} events, {args.users:,} users, {len(catalog):,} items, batches of "
                  f"{args.batch}, encoder on {encoder.device}, real redis-server, {os.cpu_count()} cores, "
                  f"{time.strftime('%Y-%m-%d %H:%M')}\n", flush=True)
            answered = dead = 0
            started = last_t = time.monotonic()
            last_n = 0
            rows.append({"events": 0, "events_per_s": float("nan"), **sizes(processor, r, settings.redis_prefix)})
            batch: list[Message] = []
            stream = messages(sim.events(args.events), settings.partitions)
            with tqdm(total=args.events, unit="ev", mininterval=2, file=sys.stderr) as bar:
                for n, message in enumerate(stream, 1):
                    batch.append(message)
                    if len(batch) < args.batch and n < args.events:
                        continue
                    out = loop.run_until_complete(processor.handle_events(batch))
                    recs, dlq = out.recommendations, out.dead_letters
                    answered, dead = answered + len(recs), dead + len(dlq)
                    bar.update(len(batch))
                    batch = []
                    if n // every != (n - args.batch) // every or n == args.events:
                        loop.run_until_complete(processor.sync())  # what the worker's timer does
                        now = time.monotonic()
                        rows.append({"events": n, "events_per_s": (n - last_n) / (now - last_t),
                                     **sizes(processor, r, settings.redis_prefix)})
                        last_t, last_n = now, n
            wall = time.monotonic() - started
            applied = sum(int(r.hget(key, "n")) for key in r.scan_iter(f"{settings.redis_prefix}user:*", count=10_000))
            processor.close()
    loop.close()

    print("| events | events/s | worker RSS MB | malloc in use / free MB | Python blocks | Redis used MB "
          "| users in Redis | items | popularity slots | co-visitation rows / pairs | bundle pairs | segments "
          "| item-item rows in Redis MB | per 1,000 items KB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        eps = "-" if row["events_per_s"] != row["events_per_s"] else f"{row['events_per_s']:,.0f}"
        print(f"| {row['events']:,} | {eps} | {row['rss_mb']:,.0f} "
              f"| {row['malloc_in_use_mb']:,.0f} / {row['malloc_free_mb']:,.0f} | {row['python_blocks']:,} "
              f"| {row['redis_mb']:,.0f} | {row['users']:,} "
              f"| {row['items']:,} | {row['popularity_slots']:,} | {row['covisit_rows']:,} / {row['covisit_pairs']:,} "
              f"| {row['bundle_pairs']:,} | {row['segments']} | {row['pairs_redis_mb']:,.1f} "
              f"| {1024 * 1000 * row['pairs_redis_mb'] / max(row['items'], 1):,.0f} |")
    first, last = rows[1] if len(rows) > 2 else rows[0], rows[-1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.events:,} events in {wall:,.0f} s ({args.events / wall:,.0f} ev/s); answered {answered:,}, "
          f"dead-lettered {dead:,}, applied (sum of users' event counts) {applied:,}: "
          f"{'every event applied once' if applied == args.events == answered else 'MISMATCH'}")
    print(f"worker RSS {rows[0]['rss_mb']:,.0f} MB after the catalogue, {first['rss_mb']:,.0f} MB at the first "
          f"checkpoint, {last['rss_mb']:,.0f} MB at the end (peak {peak:,.0f} MB); "
          f"Redis {last['redis_mb']:,.0f} MB for {last['users']:,} users "
          f"({1024 * last['redis_mb'] / max(last['users'], 1):,.1f} KB per user), of which the shared item-item "
          f"rows {last['pairs_redis_mb']:,.1f} MB ({1024 * 1000 * last['pairs_redis_mb'] / max(last['items'], 1):,.0f}"
          f" KB per 1,000 items; each row holds at most 2 x max_neighbours = "
          f"{2 * settings.model.max_neighbours} neighbours)")
    (args.out / "soak.json").write_text(json.dumps({"rows": rows, "wall_s": wall, "answered": answered,
                                                     "dead": dead, "applied": applied}, indent=2))
    plot(rows, args.out / "soak.png")
    print(f"wrote {args.out / 'soak.json'}, {args.out / 'soak.png'}")
    return 0 if applied == args.events == answered else 1


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [row["events"] / 1e6 for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [row["rss_mb"] for row in rows], marker="o", label="worker RSS")
    ax.plot(x, [row["redis_mb"] for row in rows], marker="s", label="Redis used_memory")
    ax.set_xlabel("events (millions)")
    ax.set_ylabel("MB")
    ax.set_title("soak: memory over a long stream")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
