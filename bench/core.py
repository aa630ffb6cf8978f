"""In-process events/s of the model on MovieLens 100K, event by event and batched, with HR@10 beside each.

The code path of the stream's model step, through the prequential replay
(``model.evaluate.prequential``: each event's list before it, then the event
observed): ``model.recommender.Recommender`` via ``model.evaluate.baselines.FullSystem``.
Item vectors from ``TextEncoder`` (encoded once, cached as .npy under /tmp).

Rows, all in one run:

- *event by event, exact*: one request at a time, the index searched exactly
  (the way the core worked before micro-batches and the approximate index);
- *batched*: micro-batches of 256 events split into waves of distinct users,
  one call per wave, the approximate index as configured;
- each with the ranker learning every label at once (as the replay does) and
  without (a worker: its trainer learns in another process);
- decayed popularity and co-visitation alone, for scale;

then a cProfile of the batched path, top functions by tottime. No Kafka, no
Redis, no JSON: this is the ceiling the model puts on a worker.

    .venv/bin/python bench/core.py             # ~3 min on 2 CPU cores
    .venv/bin/python bench/core.py --quick     # ~40 s
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
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
from model.evaluate.prequential import prequential  # noqa: E402
from model.recommender import Recommender  # noqa: E402
from model.threads import limit_blas_threads  # noqa: E402
from stream.settings import Settings  # noqa: E402

ML100K = Path(os.environ.get("STREAMREC_ML100K", "/work/shared/data/ml-100k"))
CACHE = Path(os.environ.get("STREAMREC_BENCH_CACHE", "/tmp/streamrec-bench"))
TARGET_EPS = 5_000


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


def full_system(items, vectors, *, exact: bool, learn: bool, name: str, learned_space: bool = True) -> FullSystem:
    config = Settings().model
    if exact:
        config = dataclasses.replace(config, ann_min_items=10**12)
    if not learned_space:  # what the learned item space's feature costs a worker
        config = dataclasses.replace(config, learned_dim=0)
    system = FullSystem(Recommender(config, dim=vectors.shape[1]), learn_ranker=learn, name=name)
    system.fit_items(items, vectors)
    return system


def run(system, events, warm: list, batch: int, k: int) -> dict:
    """Replay ``warm`` untimed, then ``events`` prequentially in micro-batches of ``batch``: ev/s and HR@k."""
    prequential(warm, [system], k=k, batch=batch)
    started = time.perf_counter()
    report = prequential(events, [system], k=k, batch=batch, progress=False)
    wall = time.perf_counter() - started
    result = report.systems[0]
    us = result.latency_ns / 1000
    return {"system": system.name, "batch": batch, "events": len(events), "events_per_s": result.events_per_s,
            "wall_events_per_s": len(events) / wall, "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99)), "hit_rate": result.metrics["hit_rate"],
            "ndcg": result.metrics["ndcg"]}


def main(argv=None) -> int:
    limit_blas_threads()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ML100K)
    p.add_argument("--events", type=int, default=20_000, help="events timed per system")
    p.add_argument("--skip", type=int, default=5_000, help="events replayed untimed first (warm state)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--quick", action="store_true", help="~40 s run")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.events, args.skip = 4_000, 1_000
    data = load_movielens(args.data)
    items, events = data.items, data.events
    vectors = item_vectors(items)
    warm, timed = events[:args.skip], events[args.skip:args.skip + args.events]
    print(f"# core benchmark: {data.name}, {len(items)} items ({vectors.shape[1]}-d TextEncoder vectors), "
          f"{len(timed):,} timed events (after {len(warm):,} untimed), k={args.k}, load avg "
          f"{os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    rows = []
    with tqdm(total=7, desc="systems", unit="system") as bar:
        for learn in (True, False):
            for exact, batch, label in ((True, 1, "event by event, exact"), (False, args.batch, "batched")):
                name = f"full, {label}, {'learning' if learn else 'serving only'}"
                rows.append(run(full_system(items, vectors, exact=exact, learn=learn, name=name), timed, warm,
                                batch, args.k))
                bar.update()
        rows.append(run(full_system(items, vectors, exact=False, learn=False, learned_space=False,
                                    name="full, batched, serving only, without the learned item space"),
                        timed, warm, args.batch, args.k))
        bar.update()
        for baseline in (DecayedPopular(), CoVisitation()):
            rows.append(run(baseline, timed, warm, args.batch, args.k))
            bar.update()
    print(f"| system | batch | events/s (model time) | p50 µs | p99 µs | HR@{args.k} | NDCG@{args.k} "
          f"| × event by event |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in enumerate(rows):
        before = rows[2] if "without" in r["system"] else rows[n - 1] if "batched" in r["system"] else r
        print(f"| {r['system']} | {r['batch']} | {r['events_per_s']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} "
              f"| {r['hit_rate']:.4f} | {r['ndcg']:.4f} | {r['events_per_s'] / before['events_per_s']:.2f}× |")
    batched = [r for r in rows if r["system"].startswith("full, batched")]
    exact_rows = [r for r in rows if "exact" in r["system"]]
    print(f"| target | | {TARGET_EPS:,} | | | within 0.5 % of the exact path | | |")
    for b, e in zip(batched, exact_rows):
        print(f"\n{b['system']}: {b['events_per_s']:,.0f} events/s ({b['events_per_s'] / TARGET_EPS:.2f}× the "
              f"target), HR@{args.k} {100 * (b['hit_rate'] / e['hit_rate'] - 1):+.2f} % against event by event exact")
    print(f"\n## cProfile: the batched path, serving only, {len(timed):,} events, top {args.top} by tottime\n")
    system = full_system(items, vectors, exact=False, learn=False, name="full")
    prequential(warm, [system], batch=args.batch)
    prof = cProfile.Profile()
    prof.enable()
    prequential(timed, [system], k=args.k, batch=args.batch)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
    print("```\n" + out.getvalue().strip() + "\n```")
    if args.json:
        args.json.write_text(json.dumps({"results": rows, "profile": out.getvalue()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
