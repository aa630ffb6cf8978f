"""Cost per event against catalogue size: the batched core with its approximate index, the exact path beside it.

Synthetic clustered catalogues (unit 384-d vectors generated directly: N/50
clusters, no encoder) of 2k, 20k, 100k and 1M items, and one event stream of
the same shape at every size: 2,000 users, each drawn to a home cluster and,
one event in five, to another, taking items of it. Each size:

- serves the stream the way a worker does (micro-batches of 256 events, waves
  of distinct users, observe then recommend; no learning, that is the
  trainer's): µs/event and events/s, first with the index as configured
  (approximate from ``ann_min_items`` on), then, as the baseline in the same
  run, with every search forced exact;
- candidate recall: of the candidates the content source proposes with exact
  search (its share per query, seen items dropped), the share it proposes
  through the index, for the same requests. Beside it the index alone at the
  depth the source asks of it (twice its share), with the mean cosine of the
  exact answers it found and of those it missed;
- memory of the item vectors plus the approximate index.

    .venv/bin/python bench/catalogue.py                       # 2k, 20k, 100k, 1M (~20 min on 2 cores)
    .venv/bin/python bench/catalogue.py --sizes 2000,20000 --events 3000

Prints a markdown table; writes a PNG of µs/event against catalogue size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from model.config import RecommenderConfig  # noqa: E402
from model.evaluate.baselines import FullSystem  # noqa: E402
from model.recommender import Recommender, Request, waves  # noqa: E402
from model.schema import Event, Item  # noqa: E402
from model.threads import limit_blas_threads  # noqa: E402

DIM, USERS, BATCH = 384, 2_000, 256
NPROBES = (8, 16, 32, 64, 128)
TARGET_RATIO, TARGET_RECALL = 2.0, 0.95


def catalogue(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors in n/50 clusters (cosine ~0.7 within a cluster, ~0 across), and each one's cluster."""
    rng = np.random.default_rng(seed)
    clusters = max(n // 50, 1)
    centres = rng.normal(size=(clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    of = rng.integers(clusters, size=n)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):  # in chunks: 1M x 384 of noise at once would double the memory
        stop = min(start + 100_000, n)
        vectors[start:stop] = centres[of[start:stop]] + 0.035 * rng.normal(size=(stop - start, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, of


def stream(of: np.ndarray, events: int, seed: int = 1) -> list[Event]:
    """The same behaviour at every size: users in a home cluster, one event in five elsewhere."""
    rng = np.random.default_rng(seed)
    members: dict[int, np.ndarray] = {}
    order = np.argsort(of, kind="stable")
    bounds = np.searchsorted(of[order], np.arange(of.max() + 2))
    home = rng.integers(of.max() + 1, size=USERS)
    out = []
    for n in range(events):
        user = int(rng.integers(USERS))
        cluster = int(home[user] if rng.random() < 0.8 else rng.integers(of.max() + 1))
        if cluster not in members:
            members[cluster] = order[bounds[cluster]:bounds[cluster + 1]]
        pool = members[cluster]
        if not len(pool):
            continue
        item = int(pool[min(int(rng.pareto(1.5)), len(pool) - 1)])  # a few items of a cluster are popular
        kind = ("view", "click", "cart", "purchase")[int(rng.choice(4, p=(0.6, 0.25, 0.1, 0.05)))]
        out.append(Event(f"e{n}", f"u{user}", f"i{item}", kind, 1.7e9 + n, "home"))
    return out


def serve(system: FullSystem, events: list[Event], recall_sample: list | None = None) -> float:
    """Seconds to observe and answer ``events`` as a worker does; optionally keep some requests for the recall check."""
    rec = system.recommender
    spent = 0.0
    for first in range(0, len(events), BATCH):
        window = events[first:first + BATCH]
        for wave in waves([e.user_id for e in window]):
            start = time.perf_counter()
            for n in wave:
                system.observe(window[n])
            requests = [Request(system.state(window[n].user_id), window[n].ts, window[n].scene) for n in wave]
            rec.recommend_many(requests)
            spent += time.perf_counter() - start
            if recall_sample is not None and len(recall_sample) < 200:
                recall_sample.extend(requests[:2])
    return spent


def content_queries(rec: Recommender, requests: list[Request]) -> np.ndarray:
    """The content queries the core sends for ``requests``: each user's blended interest and last item."""
    batch = rec._batch(requests)
    h = len(rec.config.half_lives_s)
    weights = np.asarray(rec.config.half_life_weights, dtype=np.float32)
    queries = []
    for b in range(len(requests)):
        for vector in (weights @ batch.directions[b, :h], batch.directions[b, h]):
            if np.linalg.norm(vector) > 0:
                queries.append(vector / np.linalg.norm(vector))
    return np.stack(queries) if queries else np.zeros((0, DIM), np.float32)


def content_recall(rec: Recommender, requests: list[Request]) -> float:
    """Of the candidates the content source proposes with exact search, the share it proposes through the index.

    The source's own output (``candidates_per_source`` per query once seen items are
    dropped), so this is the recall of what the ranker is given.
    """
    batch = rec._batch(requests)
    proposed = []
    for exact in (False, True):
        rec.index.force_exact = exact
        owners, rows = rec._content(batch, rec.config.candidates_per_source)
        proposed.append([set(rows[owners == b].tolist()) for b in range(len(requests))])
    rec.index.force_exact = False
    return float(np.mean([len(a & e) / len(e) for a, e in zip(*proposed) if e]))


def index_recall(rec: Recommender, queries: np.ndarray) -> tuple[float, float, float, float]:
    """The index alone on the source's queries, at the depth the source asks it (twice its share).

    Returns recall against exact search, µs per query (batched), and the mean cosine of the
    exact answers the index found and of those it missed: what the misses were worth.
    """
    if not len(queries):
        return float("nan"), float("nan"), float("nan"), float("nan")
    k = 2 * rec.config.candidates_per_source
    start = time.perf_counter()
    approx, _ = rec.index.search(queries, k)
    seconds = time.perf_counter() - start
    exact, exact_scores = rec.index.search(queries, k, exact=True)
    hit = np.array([np.isin(e, a) for a, e in zip(approx, exact)]) & (exact >= 0)
    valid = exact >= 0
    return (float(hit.sum() / valid.sum()), seconds / len(queries) * 1e6,
            float(exact_scores[hit].mean()), float(exact_scores[valid & ~hit].mean()) if (valid & ~hit).any() else 1.0)


def measure(n: int, events: int, warm: int, exact_events: int, config: RecommenderConfig) -> dict:
    vectors, of = catalogue(n)
    log = stream(of, warm + events)
    items = [Item(f"i{i}", f"Item {i}", f"c{of[i]}") for i in range(n)]
    system = FullSystem(Recommender(config, DIM), learn_ranker=False)
    t = time.perf_counter()
    for start in tqdm(range(0, n, 50_000), desc=f"{n:,} items: index", unit="chunk", leave=False):
        system.fit_items(items[start:start + 50_000], vectors[start:start + 50_000])
    build_s = time.perf_counter() - t
    del vectors
    serve(system, log[:warm])
    sample: list[Request] = []
    seconds = serve(system, log[warm:], recall_sample=sample)
    rec = system.recommender
    queries = content_queries(rec, sample)
    recall, index = (content_recall(rec, sample), index_recall(rec, queries)) if rec.index.approximate else \
        (1.0, (1.0, float("nan"), float("nan"), float("nan")))
    sweep = []
    if rec.index.approximate:  # what more (or fewer) lists visited per query would buy
        chosen = rec.index.nprobe
        for nprobe in NPROBES:
            rec.index.nprobe = nprobe
            sweep.append((nprobe, content_recall(rec, sample), *index_recall(rec, queries)[:2]))
        rec.index.nprobe = chosen
    # The baseline: the same core, state carried on, with every search exact, on the events that
    # follow (as many as the exact search can afford at this size).
    more = stream(of, warm + events + exact_events)[warm + events:]
    rec.index.force_exact = rec.new_index.force_exact = True
    exact_seconds = serve(system, more)
    rec.index.force_exact = rec.new_index.force_exact = False
    return {"items": n, "events": events, "us_per_event": seconds / events * 1e6, "events_per_s": events / seconds,
            "exact_us_per_event": exact_seconds / max(len(more), 1) * 1e6, "exact_events": len(more),
            "candidate_recall": recall, "index_recall": index[0], "found_cosine": index[2], "missed_cosine": index[3],
            "memory_mb": rec.index.memory_bytes / 1e6, "build_s": build_s,
            "approximate": rec.index.approximate, "sweep": sweep}


def main(argv=None) -> int:
    limit_blas_threads()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="2000,20000,100000,1000000")
    p.add_argument("--events", type=int, default=10_000, help="events timed per size")
    p.add_argument("--warm", type=int, default=5_000, help="events served untimed first")
    p.add_argument("--exact-events", type=int, default=1_000, help="events timed on the exact path (the baseline)")
    p.add_argument("--plot", type=Path, default=Path("results/catalogue.png"))
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    config = RecommenderConfig()
    print(f"# catalogue benchmark: {USERS:,} users, micro-batches of {BATCH}, {args.events:,} timed events per size "
          f"after {args.warm:,} untimed; exact path on {args.exact_events:,} more; ann from {config.ann_min_items:,} "
          f"items, nprobe {config.ann_nprobe}; load avg {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    rows = []
    for n in sizes:
        rows.append(measure(n, args.events, args.warm, args.exact_events, config))
        tqdm.write(f"  {n:,}: {rows[-1]['us_per_event']:,.0f} µs/event")
    base = rows[0]["us_per_event"]
    print(f"| items | µs/event | events/s | × {sizes[0]:,} | exact path µs/event (same run) | exact ÷ this "
          "| content candidates' recall vs exact | index recall@2n | cosine found / missed | vectors + index MB "
          "| index build s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['items']:,} | {r['us_per_event']:,.0f} | {r['events_per_s']:,.0f} "
              f"| {r['us_per_event'] / base:.2f} | {r['exact_us_per_event']:,.0f} "
              f"| {r['exact_us_per_event'] / r['us_per_event']:.1f}× "
              f"| {r['candidate_recall']:.3f} | {r['index_recall']:.3f} "
              f"| {r['found_cosine']:.2f} / {r['missed_cosine']:.2f} | {r['memory_mb']:,.0f} | {r['build_s']:.1f} |")
    worst = max(r["us_per_event"] for r in rows) / base
    recall = min(r["candidate_recall"] for r in rows)
    print(f"\ntarget: cost at the largest size <= {TARGET_RATIO:.0f}× the smallest ({worst:.2f}×: "
          f"{'met' if worst <= TARGET_RATIO else 'NOT met'}); candidate recall >= {TARGET_RECALL} "
          f"({recall:.3f}: {'met' if recall >= TARGET_RECALL else 'NOT met'})")
    print("\nContent candidates' recall / the index's recall@2n (µs per query, batched) against the lists "
          "visited per query (nprobe):\n")
    print("| items | " + " | ".join(f"nprobe {p}" for p in NPROBES) + " |")
    print("|---:|" + "---:|" * len(NPROBES))
    for r in rows:
        if r["sweep"]:
            cells = [f"{rc:.3f} / {ri:.3f} ({us:,.0f} µs)" for _, rc, ri, us in r["sweep"]]
            print(f"| {r['items']:,} | " + " | ".join(cells) + " |")
    plot(rows, args.plot)
    print(f"wrote {args.plot}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    sizes = [r["items"] for r in rows]
    ax.plot(sizes, [r["us_per_event"] for r in rows], marker="o", label="batched core, approximate index")
    ax.plot(sizes, [r["exact_us_per_event"] for r in rows], marker="s", linestyle="--", label="same core, exact search")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("µs per event (observe + recommend)")
    ax.set_title("Cost per event against catalogue size")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
