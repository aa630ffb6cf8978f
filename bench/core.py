"""In-process events/s of the model with one recommendation per event, on MovieLens 100K.

The same code path as the stream's model step (``model.recommender.Recommender``:
``recommend`` then ``observe`` + ``learn``, through ``model.evaluate.baselines.FullSystem``
as the prequential replay uses it), item vectors from ``TextEncoder`` (encoded
once, cached as .npy under /tmp). Beside it: decayed popularity only and
co-visitation only (``model.evaluate.baselines``), and the 20,000 events/s target.
Then a cProfile of the full system, top functions by tottime.

No Kafka, no Redis, no JSON: this is the ceiling the model puts on a worker.

    .venv/bin/python bench/core.py             # ~1-2 min on 2 CPU cores
    .venv/bin/python bench/core.py --quick     # ~20 s
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from model.datasets import load_movielens  # noqa: E402
from model.evaluate.baselines import CoVisitation, DecayedPopular, FullSystem  # noqa: E402
from model.recommender import Recommender  # noqa: E402
from model.threads import limit_blas_threads  # noqa: E402
from stream.settings import Settings  # noqa: E402

ML100K = Path(os.environ.get("STREAMREC_ML100K", "/work/shared/data/ml-100k"))
CACHE = Path(os.environ.get("STREAMREC_BENCH_CACHE", "/tmp/streamrec-bench"))
TARGET_EPS = 20_000


def item_vectors(items) -> np.ndarray:
    """TextEncoder vectors of the items' encoder texts, cached on disk by a hash of the texts."""
    texts = [item.text_for_encoder for item in items]
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"vectors-{key}.npy"
    if path.is_file():
        return np.load(path)
    from model.encoder import TextEncoder

    encoder = TextEncoder(device="auto", cache_size=0)
    chunks = [texts[i:i + 256] for i in range(0, len(texts), 256)]
    vectors = np.concatenate([encoder.encode(c) for c in tqdm(chunks, desc="encoding items", unit="chunk")])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def full_system(items, vectors) -> FullSystem:
    system = FullSystem(Recommender(Settings().model, dim=vectors.shape[1]))
    system.fit_items(items, vectors)
    return system


def systems(items, vectors) -> list:
    out = [full_system(items, vectors), DecayedPopular(), CoVisitation()]
    for s in out[1:]:
        s.fit_items(items, vectors)
    return out


def run(system, events, k: int) -> dict:
    """recommend + observe per event, as model.evaluate.prequential does; per-event ns."""
    clock = time.perf_counter_ns
    lat = np.empty(len(events), dtype=np.int64)
    started = time.perf_counter()
    for i, event in enumerate(tqdm(events, desc=system.name, unit="ev", mininterval=0.5, leave=False)):
        t = clock()
        system.recommend(event, k)
        system.observe(event)
        lat[i] = clock() - t
    wall = time.perf_counter() - started
    us = lat / 1000
    return {"system": system.name, "events": len(events), "events_per_s": len(events) / (lat.sum() / 1e9),
            "wall_events_per_s": len(events) / wall, "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean())}


def profile(items, vectors, events, k: int, top: int) -> str:
    system = full_system(items, vectors)
    prof = cProfile.Profile()
    prof.enable()
    for event in events:
        system.recommend(event, k)
        system.observe(event)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv=None) -> int:
    limit_blas_threads()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ML100K)
    p.add_argument("--events", type=int, default=20_000, help="events replayed per system (from the start)")
    p.add_argument("--skip", type=int, default=0, help="events to replay untimed first (warm state)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--profile-events", type=int, default=5_000)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--quick", action="store_true", help="~20 s run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.profile_events = 3_000, 2_000
    data = load_movielens(args.data)
    items, events = data.items, data.events
    vectors = item_vectors(items)
    warm, timed = events[:args.skip], events[args.skip:args.skip + args.events]
    print(f"# core benchmark: {data.name}, {len(items)} items ({vectors.shape[1]}-d TextEncoder vectors), "
          f"{len(timed):,} timed events (after {len(warm):,} untimed), k={args.k}, load avg {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    results = []
    for system in systems(items, vectors):
        for event in warm:
            system.recommend(event, args.k)
            system.observe(event)
        results.append(run(system, timed, args.k))
    full = results[0]
    print("| system | events/s (model time) | events/s (wall, incl. loop) | p50 µs/event | p99 µs/event "
          "| full ÷ this (events/s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['system']} | {r['events_per_s']:,.0f} | {r['wall_events_per_s']:,.0f} | {r['p50_us']:,.0f} "
              f"| {r['p99_us']:,.0f} | {full['events_per_s'] / r['events_per_s']:.2f}× |")
    print(f"| target | {TARGET_EPS:,} | | {1e6 / TARGET_EPS:,.0f} (mean) | | "
          f"{full['events_per_s'] / TARGET_EPS:.2f}× |")
    print(f"\n## cProfile: full system, {args.profile_events:,} events, top {args.top} by tottime\n")
    text = profile(items, vectors, events[:args.profile_events], args.k, args.top)
    print("```\n" + text.strip() + "\n```")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "profile": text}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
