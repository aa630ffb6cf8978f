"""Encoder throughput and MicroBatcher latency, each beside its baseline.

Part 1 — titles/s of ``model.encoder.TextEncoder`` at fixed batch sizes, beside
sentence-transformers' own ``SentenceTransformer(model_dir()).encode`` on the
same texts (fp32 on CPU; fp16 on CUDA when a GPU is visible).

Part 2 — the ``MicroBatcher`` in front of the encoder under Poisson arrivals:
a generator thread submits one text at exponential inter-arrival times; per
request the added latency is completion − submit. Reported beside the best
fixed-batch throughput of part 1, and with the mean forward-pass (batch
compute) time so queueing can be told apart from compute.

    .venv/bin/python bench/encoder.py            # ~2 min on 2 CPU cores
    .venv/bin/python bench/encoder.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from model.encoder import MicroBatcher, TextEncoder, model_dir  # noqa: E402

ML100K = Path(os.environ.get("STREAMREC_ML100K", "/work/shared/data/ml-100k"))


def load_titles(source: str, n: int, seed: int = 0) -> list[str]:
    """``n`` distinct-ish texts: ml-100k titles (+ genres) or the synthetic catalogue."""
    if source == "ml-100k" and (ML100K / "u.item").is_file():
        from model.datasets import load_movielens

        texts = [item.text_for_encoder for item in load_movielens(ML100K).items]
    else:
        from model.datasets.synthetic import make_catalog

        texts = [f"{i['title']}. {i['category']}. {i['text']}" for i in make_catalog(items_per_category=80)]
    rng = random.Random(seed)
    rng.shuffle(texts)
    return (texts * (n // len(texts) + 1))[:n]


def devices() -> list[tuple[str, torch.dtype]]:
    out = [("cpu", torch.float32)]
    if torch.cuda.is_available():
        out.append(("cuda", torch.float16))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_fn(fn, texts: list[str], batch: int, min_s: float, device: str) -> float:
    """texts/s of ``fn(chunk)`` over consecutive chunks of ``batch`` texts, for at least ``min_s``."""
    fn(texts[:batch])  # warm-up (allocator, kernels)
    sync(device)
    done, i, start = 0, 0, time.perf_counter()
    while True:
        chunk = texts[i:i + batch] if i + batch <= len(texts) else texts[:batch]
        i = (i + batch) % max(len(texts) - batch, 1)
        fn(chunk)
        done += len(chunk)
        elapsed = time.perf_counter() - start
        if elapsed >= min_s and done >= batch * 2:
            sync(device)
            return done / (time.perf_counter() - start)


def fixed_batches(texts, batch_sizes, min_s, reps: int = 3) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    rows = []
    for device, dtype in devices():
        ours = TextEncoder(device=device, batch_size=max(batch_sizes), cache_size=0)
        st = SentenceTransformer(str(model_dir()), device=device)
        if dtype == torch.float16:
            st = st.half()
        for b in tqdm(batch_sizes, desc=f"fixed batches ({device})", unit="size", leave=False):
            # Interleaved rounds, best of each: other load on the machine hits both sides alike.
            ours_tps = st_tps = 0.0
            for _ in range(reps):
                ours_tps = max(ours_tps, time_fn(ours.encode, texts, b, min_s / reps, device))
                st_tps = max(st_tps, time_fn(lambda c, b=b, st=st: st.encode(c, batch_size=b, show_progress_bar=False,
                                                                      convert_to_numpy=True),
                                             texts, b, min_s / reps, device))
            rows.append({"device": device, "dtype": str(dtype).removeprefix("torch."), "batch": b,
                         "ours_per_s": ours_tps, "st_per_s": st_tps,
                         "ms_per_batch": 1000 * b / ours_tps})
        del ours, st
    return rows


def poisson_run(batcher: MicroBatcher, texts: list[str], rate: float | None, duration_s: float,
                max_requests: int, seed: int = 0) -> dict:
    """Submit at exponential gaps (rate=None: as fast as possible, i.e. saturation)."""
    rng = random.Random(seed)
    submits: list[float] = []
    futures = []
    b0, i0 = batcher.batches, batcher.items
    batch_secs: list[float] = []
    old_cb = batcher.on_batch
    # on_batch runs on the batcher's thread just before the batch's futures resolve, so
    # when a future's callback runs, batch_secs[-1] is the compute of its own batch.
    batch_ends: list[float] = []

    def on_batch(size: int, secs: float) -> None:
        batch_secs.append(secs)
        batch_ends.append(time.perf_counter())

    batcher.on_batch = on_batch
    fill_waits: list[float] = []
    busy_waits: list[float] = []

    def done(t_submit: float) -> None:
        # A request waits before its batch starts for two reasons: the batch filling
        # (at most max_wait: what micro-batching adds) and the encoder still running the
        # batch before (what any single encoder imposes at that load).
        now = time.perf_counter()
        latencies.append(now - t_submit)
        start = now - batch_secs[-1]
        previous_end = batch_ends[-2] if len(batch_ends) > 1 else float("-inf")
        busy = max(0.0, min(previous_end, start) - t_submit)
        busy_waits.append(busy)
        fill_waits.append(max(0.0, start - t_submit - busy))
    start = time.perf_counter()
    next_t = start
    n = 0
    latencies = []
    while n < max_requests and time.perf_counter() - start < duration_s:
        if rate is not None:
            next_t += rng.expovariate(rate)
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        else:
            # Saturation: keep a deep backlog, but don't let it grow without bound.
            if n >= 4 * batcher.max_batch:
                futures[n - 4 * batcher.max_batch].result()  # block, don't poll: the GIL is shared
        t_submit = time.perf_counter()
        fut = batcher.submit(texts[n % len(texts)])
        fut.add_done_callback(lambda f, t=t_submit: done(t))
        submits.append(t_submit)
        futures.append(fut)
        n += 1
    for fut in futures:
        fut.result()
    end = time.perf_counter()
    batcher.on_batch = old_cb
    lat_ms = sorted(1000 * x for x in latencies)
    q = statistics.quantiles(lat_ms, n=100) if len(lat_ms) > 1 else lat_ms * 99
    def quantiles(xs):
        ms = sorted(1000 * x for x in xs)
        return statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99

    w, busy = quantiles(fill_waits), quantiles(busy_waits)
    batches = batcher.batches - b0
    return {
        "offered_per_s": rate if rate is not None else float("nan"),
        "requests": n,
        "achieved_per_s": n / (end - start),
        "p50_ms": q[49], "p99_ms": q[98], "wait_p50_ms": w[49], "wait_p99_ms": w[98],
        "busy_p99_ms": busy[98],
        "mean_batch": (batcher.items - i0) / max(batches, 1),
        "batch_compute_ms": 1000 * statistics.fmean(batch_secs) if batch_secs else float("nan"),
        "batch_compute_p99_ms": 1000 * (statistics.quantiles(batch_secs, n=100)[98]
                                        if len(batch_secs) > 1 else float("nan")),
    }


def microbatcher(texts, rates, duration_s, max_batch, max_wait_s, device, best_batch: int, reps: int = 3) -> list[dict]:
    encoder = TextEncoder(device=device, batch_size=max_batch, cache_size=0)
    encoder.encode(texts[:max_batch])  # warm-up
    rows = []
    with MicroBatcher(encoder.encode, max_batch=max_batch, max_wait_s=max_wait_s) as batcher:
        for rate in tqdm(rates, desc=f"Poisson arrivals ({device})", unit="rate", leave=False):
            if rate is not None:
                r = poisson_run(batcher, texts, rate, duration_s, max_requests=int(rate * duration_s) + 1)
            else:
                # Saturation against the best fixed batch, in interleaved rounds, best of each:
                # load from other processes then hits both sides alike.
                r, fixed = None, 0.0
                for _ in range(reps):
                    fixed = max(fixed, time_fn(encoder.encode, texts, best_batch, duration_s / reps, device))
                    run = poisson_run(batcher, texts, None, duration_s / reps,
                                      max_requests=int(10_000 * duration_s / reps) + 1)
                    r = run if r is None or run["achieved_per_s"] > r["achieved_per_s"] else r
                r["fixed_same_time_per_s"] = fixed
            r["device"] = device
            rows.append(r)
    return rows


def fmt(x: float, spec: str = ",.0f") -> str:
    return "n/a" if x != x else format(x, spec)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", choices=["ml-100k", "synthetic"], default="ml-100k")
    p.add_argument("--batch-sizes", default="1,16,64,256")
    p.add_argument("--min-s", type=float, default=4.5, help="seconds per fixed-batch measurement (3 rounds)")
    p.add_argument("--rates", default="20,100,300,sat", help="texts/s; 'sat' = saturation")
    p.add_argument("--duration-s", type=float, default=8.0, help="seconds per Poisson rate")
    p.add_argument("--max-batch", type=int, default=16, help="MicroBatcher max_batch (worker default on CPU: 16)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="MicroBatcher max_wait (worker default 5)")
    p.add_argument("--quick", action="store_true", help="~20 s run")
    p.add_argument("--json", type=Path, help="save results here")
    args = p.parse_args(argv)
    if args.quick:
        args.min_s, args.duration_s, args.batch_sizes = 0.7, 2.0, "1,16,64"
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rates = [None if r.strip() == "sat" else float(r) for r in args.rates.split(",")]
    texts = load_titles(args.texts, 4096)
    torch.set_grad_enabled(False)
    print(f"# encoder benchmark: {len(set(texts))} distinct {args.texts} texts, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}, load avg {os.getloadavg()[0]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")

    fixed = fixed_batches(texts, batch_sizes, args.min_s)
    print("## TextEncoder vs SentenceTransformer.encode (texts/s, cache off)\n")
    print("| device | dtype | batch | TextEncoder texts/s | sentence-transformers texts/s | ratio | ms per batch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in fixed:
        print(f"| {r['device']} | {r['dtype']} | {r['batch']} | {fmt(r['ours_per_s'])} | {fmt(r['st_per_s'])} "
              f"| {r['ours_per_s'] / r['st_per_s']:.2f} | {r['ms_per_batch']:.1f} |")

    all_mb = []
    for device, _ in devices():
        best = max(r["ours_per_s"] for r in fixed if r["device"] == device)
        best_b = max((r for r in fixed if r["device"] == device), key=lambda r: r["ours_per_s"])["batch"]
        mb = microbatcher(texts, rates, args.duration_s, args.max_batch, args.max_wait_ms / 1000, device, best_b)
        for r in mb:
            r["best_fixed_per_s"] = r.get("fixed_same_time_per_s", best)
        all_mb += mb
        print(f"\n## MicroBatcher (max_batch={args.max_batch}, max_wait={args.max_wait_ms:g} ms) under Poisson "
              f"arrivals, {device}; best fixed batch = {fmt(best)} texts/s (batch {best_b})\n")
        print("| offered texts/s | achieved texts/s | % of best fixed (see target) | batch fill wait p50 ms | p99 ms "
              "| encoder busy wait p99 ms | latency p50 ms | p99 ms | mean batch | batch compute mean ms "
              "| batch compute p99 ms | target |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in mb:
            sat = r["offered_per_s"] != r["offered_per_s"]
            low = not sat and r["offered_per_s"] <= 20
            target = (f"≥ 90 % of fixed batches of {best_b} run in the same rounds ({fmt(r['best_fixed_per_s'])}/s)"
                      if sat else "fill p99 < 10 ms at low load" if low else "")
            print(f"| {'saturation' if sat else fmt(r['offered_per_s'])} | {fmt(r['achieved_per_s'])} "
                  f"| {100 * r['achieved_per_s'] / r['best_fixed_per_s']:.0f} % "
                  f"| {r['wait_p50_ms']:.1f} | {r['wait_p99_ms']:.1f} "
                  f"| {r['busy_p99_ms']:.1f} "
                  f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                  f"| {r['mean_batch']:.1f} | {r['batch_compute_ms']:.1f} | {fmt(r['batch_compute_p99_ms'], '.1f')} "
                  f"| {target} |")
    print(f"\nload avg at the end {os.getloadavg()[0]:.2f}. "
          "latency = completion − submit. Before its batch starts a request waits for the batch to fill "
          "(≤ max_wait: what micro-batching adds, the target) and for the encoder to finish the batch before "
          "(what any single encoder imposes at that load). At saturation the % compares with fixed batches "
          f"of {best_b} run in interleaved rounds with it, best of each.")
    if args.json:
        args.json.write_text(json.dumps({"fixed": fixed, "microbatcher": all_mb}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
