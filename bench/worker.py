"""Where one worker's time goes, without Kafka: the stream's batch step against a real redis-server.

``stream.processor.StreamProcessor.handle_events``, the code a Faust worker runs on
each micro-batch, is fed batches of a synthetic stream (200 drifting users over a
960-item catalogue, the load ``bench/pipeline.py`` offers) as the agent hands them
over, with the real encoder and a real redis-server (``stream.stack.LocalStack``).
Per configuration: events/s, and the seconds spent in each store round trip
(``RedisStore``'s ``on_round_trip`` hook: reading users, saving users with the
batch's shared increments, reading the shared pair rows); the rest is the model,
the codec and the processor's own work; and the CPU seconds redis-server spent
meanwhile (it shares the machine's cores with the worker). Beside the served
configuration (shared item-item counts, rows cached ``pair_cache_ttl_s``), the
same events with each worker keeping its own counts (``shared_pairs=False``), in
the same run, and, with ``--profile``, a cProfile of the served one.

    .venv/bin/python bench/worker.py             # ~2 min on 2 CPU cores
    .venv/bin/python bench/worker.py --profile   # and the top functions by own time
    .venv/bin/python bench/worker.py --quick     # ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bench.soak import messages  # noqa: E402
from model.datasets.synthetic import DriftingUsers, make_catalog  # noqa: E402
from model.encoder import MicroBatcher, TextEncoder  # noqa: E402
from model.threads import limit_blas_threads  # noqa: E402
from stream.codec import Message  # noqa: E402
from stream.processor import StreamProcessor  # noqa: E402
from stream.stack import LocalStack  # noqa: E402
from stream.store import RedisStore  # noqa: E402


def run(stack: LocalStack, encoder: TextEncoder, events: list[dict], catalog: list[dict], batch: int,
        profile: cProfile.Profile | None = None, **overrides) -> dict:
    """Half the events untimed (users and counts warm), then the rest timed: ev/s and seconds per round trip."""
    settings = stack.isolated_settings(Path(tempfile.mkdtemp(prefix="streamrec-bench-worker-")), partitions=1,
                                       **overrides)
    store = RedisStore(settings.redis_url, settings.redis_prefix, user_ttl_s=settings.user_ttl_s)
    with MicroBatcher(encoder.encode, settings.encoder_batch_for(encoder.device), settings.encoder_wait_s) as b:
        processor = StreamProcessor(settings, store, b.encode_async, encoder.dim)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(processor.handle_items([Message(i["item_id"].encode(), orjson.dumps(i))
                                                        for i in catalog]))
        stream = list(messages(events, 1))
        batches = [stream[i:i + batch] for i in range(0, len(stream), batch)]
        half = len(batches) // 2
        for messages_in_batch in tqdm(batches[:half], desc="warm", unit="batch", leave=False):
            processor._handle_events(messages_in_batch, False)
        seconds: dict[str, float] = defaultdict(float)
        store.on_round_trip = lambda name, s: seconds.__setitem__(name, seconds[name] + s)
        timed = sum(len(m) for m in batches[half:])
        server_cpu = _server_cpu_s(store)
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        for messages_in_batch in tqdm(batches[half:], desc="timed", unit="batch", leave=False):
            # The processor's own step, on this thread (the worker runs it in its executor thread).
            processor._handle_events(messages_in_batch, False)
        if profile is not None:
            profile.disable()
        wall = time.perf_counter() - started
        server_cpu = _server_cpu_s(store) - server_cpu
        processor.close()
        loop.close()
    return {"events": timed, "wall": wall, "seconds": dict(seconds), "server_cpu": server_cpu}


def _server_cpu_s(store: RedisStore) -> float:
    """CPU seconds redis-server has used (user + system): what the store's round trips cost it."""
    cpu = store.redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def main(argv=None) -> int:
    limit_blas_threads()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=12_000, help="events in all (the second half is timed)")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--batch", type=int, default=256, help="messages per micro-batch (the worker's BATCH_MAX)")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="~1 min run (4,000 events)")
    p.add_argument("--json", type=Path, help="write the rows here too")
    args = p.parse_args(argv)
    if args.quick:
        args.events = 4_000
    catalog = make_catalog(items_per_category=40, seed=0)
    mean_gap_s = 3.0  # event times end about now: the schema rejects events from the future
    sim = DriftingUsers(catalog, n_users=args.users, seed=0, mean_gap_s=mean_gap_s,
                        start_ts=time.time() - 1.1 * mean_gap_s * args.events)
    events = list(sim.events(args.events))
    encoder = TextEncoder()
    profile = cProfile.Profile() if args.profile else None
    with LocalStack(Path(tempfile.mkdtemp(prefix="streamrec-bench-worker-stack-"))) as stack:
        print(f"# worker step: {len(events):,} events ({len(events) // 2:,} timed) of {args.users} users, "
              f"{len(catalog)} items, batches of {args.batch}, real redis-server, encoder on {encoder.device}, "
              f"{time.strftime('%Y-%m-%d %H:%M')}\n", flush=True)
        rows = [("shared item-item counts (served)", run(stack, encoder, events, catalog, args.batch, profile)),
                ("each worker's own counts (baseline)",
                 run(stack, encoder, events, catalog, args.batch, shared_pairs=False))]
    ops = ("load_users", "save_users", "load_pairs")
    print("| configuration | events/s | " + " | ".join(f"{op} s" for op in ops)
          + " | rest s | wall s | redis-server CPU s |")
    print("|---|---:|" + "---:|" * (len(ops) + 3))
    for name, r in rows:
        in_store = sum(r["seconds"].get(op, 0.0) for op in ops)
        print(f"| {name} | {r['events'] / r['wall']:,.0f} | "
              + " | ".join(f"{r['seconds'].get(op, 0.0):.2f}" for op in ops)
              + f" | {r['wall'] - in_store:.2f} | {r['wall']:.2f} | {r['server_cpu']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps([{"configuration": name, **r} for name, r in rows], indent=2))
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
        print(f"\n## cProfile of the served configuration, top {args.top} by own time\n\n```")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
        print("```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
