"""``streamrec replay``: a recorded event log, replayed in-process through the baselines and the full system.

Loads a dataset (:mod:`model.datasets`), encodes every item text once with
the same encoder the workers use, builds the systems (:mod:`model.evaluate.baselines`;
the full one from the same settings as a worker), runs the prequential
protocol (:mod:`model.evaluate`), prints the table and writes, under ``--out``:

- ``report.json``: everything measured, with the dataset, settings and timings;
- ``hit_rate.png``: HR@k over time, one line per system;
- ``latency.png``: a histogram of recommend + learn time per system.

With ``--via-kafka`` only the full system is replayed, through a local stack
and one worker process, and scored "as served" (:mod:`stream.kafka_replay`).

Examples
--------
>>> from model.datasets.synthetic import DriftingUsers, make_catalog
>>> from model.datasets import Dataset
>>> from model.schema import Event
>>> events = [Event(**e) for e in DriftingUsers(make_catalog(3, 5), n_users=4, seed=0).events(60)]
>>> result = replay(Dataset("tiny", [], events), systems=["popular", "covisit"], k=5, progress=False)
>>> [row["name"] for row in result["systems"]], result["protocol"]["scored_events"]
(['popular', 'covisit'], 60)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

from model.datasets import Dataset, RatingTypes, load_jsonl, load_movielens
from model.evaluate.baselines import ContentOnly, CoVisitation, DecayedPopular, FullSystem, MostPopular, System
from model.evaluate.prequential import Report, prequential
from model.recommender import Recommender
from model.threads import limit_blas_threads
from stream.settings import Settings

#: The systems ``--systems`` may name, in the order reports list them.
SYSTEMS = ("popular", "decayed", "covisit", "content", "full")
#: Systems that read item text vectors (the encoder is loaded only for them).
NEEDS_VECTORS = {"content", "full"}
DEFAULT_OUT = Path("results") / "replay"
#: Rough cost of one event per system (µs on ml-100k, 2 cores), to balance ``jobs`` processes.
COST_US = {"popular": 50, "decayed": 50, "covisit": 60, "content": 1100, "full": 2000}
#: Content-only keeps the user's whole history: a year.
CONTENT_HALF_LIFE_S = 365 * 86400.0


def build_systems(names: Sequence[str], settings: Settings, dim: int, *, exclude_seen: bool = True,
                  content_half_life_s: float = CONTENT_HALF_LIFE_S) -> list[System]:
    """The named systems, configured from ``settings`` where the stream has the same knob.

    Baselines share the full system's knobs (popularity and co-visitation half-lives,
    co-visitation seeds): a lift measured against a worse-tuned baseline is not a lift.
    """
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    config = settings.model  # the worker's own config, so the replay measures the model as it serves
    popularity_half_life = config.popularity_half_life_s
    make = {
        "popular": lambda: MostPopular(exclude_seen=exclude_seen),
        "decayed": lambda: DecayedPopular(popularity_half_life, exclude_seen=exclude_seen),
        "covisit": lambda: CoVisitation(config.covisit_half_life_s, n_recent=config.covisit_seeds,
                                        popularity_half_life_s=popularity_half_life, exclude_seen=exclude_seen),
        "content": lambda: ContentOnly(dim, content_half_life_s, exclude_seen=exclude_seen),
        "full": lambda: FullSystem(Recommender(
            dataclasses.replace(config, exclude_seen=exclude_seen), dim)),
    }
    return [make[name]() for name in names]


def replay(dataset: Dataset, *, systems: Sequence[str] = SYSTEMS, k: int = 10, limit: int | None = None,
           warmup: int = 0, score_types: Sequence[str] | None = None, window: int = 2000,
           exclude_seen: bool = True, settings: Settings | None = None, encoder=None,
           out: str | Path | None = None, progress: bool = True, timings: dict[str, float] | None = None,
           jobs: int = 1) -> dict:
    """Replay ``dataset`` through ``systems`` prequentially; write the report and plots to ``out`` if given.

    ``encoder`` (a :class:`model.encoder.TextEncoder`) is built from the settings
    when a system needs item vectors and none is given. ``timings`` (e.g. the
    load time) are reported with the replay's own. Systems never interact, so
    with ``jobs`` > 1 they replay in that many processes, split by cost; each
    one's latency is then measured on its own core (as long as there are
    ``jobs`` free cores).

    Returns
    -------
    dict
        The report (what ``report.json`` holds).
    """
    started = time.perf_counter()
    settings = Settings.from_env() if settings is None else settings
    timings = dict(timings or {})
    vectors = None
    dim = 0
    if NEEDS_VECTORS & set(systems):
        t = time.perf_counter()
        if encoder is None:
            from model.encoder import TextEncoder

            encoder = TextEncoder(device=settings.encoder_device)
        timings["encoder_load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        vectors = encoder.encode([item.text_for_encoder for item in dataset.items])
        dim = encoder.dim
        timings["encode_s"] = time.perf_counter() - t
    catalogue = len({item.item_id for item in dataset.items} | {e.item_id for e in dataset.events})
    protocol = dict(k=k, limit=limit, warmup=warmup, score_types=score_types, catalogue_size=catalogue, window=window)
    groups = _split_by_cost(systems, jobs)
    t = time.perf_counter()
    if len(groups) == 1:
        report, configs = _replay_group(systems, settings, dim, exclude_seen, dataset, vectors, protocol, progress)
    else:
        # spawn, not fork: the parent has run torch's thread pool, which a forked child must not inherit.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(len(groups), mp_context=context) as pool:
            # Only the slowest group shows a bar: the others finish first, and bars from
            # several processes would overwrite each other.
            futures = [pool.submit(_replay_group, group, settings, dim, exclude_seen, dataset, vectors, protocol,
                                   progress and i == 0) for i, group in enumerate(groups)]
            parts = [future.result() for future in futures]
        by_name = {r.name: r for part_report, _ in parts for r in part_report.systems}
        report = dataclasses.replace(parts[0][0], systems=[by_name[name] for name in systems],
                                     wall_s=time.perf_counter() - t)
        configs = {name: config for _, part_configs in parts for name, config in part_configs.items()}
    timings["replay_s"] = report.wall_s
    result = report.to_dict()
    result["dataset"] = dataset.summary()
    result["settings"] = {
        "systems": list(systems), "exclude_seen": exclude_seen, "jobs": len(groups),
        "processes": [list(group) for group in groups],
        "recommender_configs": configs,
        "popularity_half_life_s": settings.model.popularity_half_life_s,
        "covisit_half_life_s": settings.model.covisit_half_life_s,
        "covisit_seeds": settings.model.covisit_seeds,
    }
    return finish(report, result, timings, started, out, title=dataset.name)


def finish(report: Report, result: dict, timings: dict[str, float], started: float,
           out: str | Path | None, title: str) -> dict:
    """Add what every replay report carries (environment, timings, table); write it to ``out`` if given."""
    result["environment"] = {"python": platform.python_version(), "numpy": np.__version__,
                             "cpus": os.cpu_count(), "machine": platform.machine()}
    timings["total_s"] = time.perf_counter() - started + timings.get("load_s", 0.0)
    result["timings"] = timings
    result["table"] = report.table()
    if out is not None:
        write_outputs(report, result, Path(out), title=title)
    return result


def _split_by_cost(systems: Sequence[str], jobs: int) -> list[list[str]]:
    """Systems in at most ``jobs`` groups of similar total cost, the costliest group first."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(systems))))]
    load = [0] * len(groups)
    for name in sorted(systems, key=lambda n: -COST_US.get(n, 0)):
        lightest = load.index(min(load))
        groups[lightest].append(name)
        load[lightest] += COST_US.get(name, 0)
    return [group for group in groups if group]


def _replay_group(names: Sequence[str], settings: Settings, dim: int, exclude_seen: bool, dataset: Dataset,
                  vectors: np.ndarray | None, protocol: dict, progress: bool) -> tuple[Report, dict]:
    """Build ``names``, give them the catalogue, replay; in this process or in a worker process."""
    limit_blas_threads()  # a spawned process starts without the CLI's limit
    built = build_systems(names, settings, dim, exclude_seen=exclude_seen)
    if vectors is not None:
        for system in built:
            system.fit_items(dataset.items, vectors)
    report = prequential(dataset.events, built, progress=progress, **protocol)
    configs = {s.name: _jsonable(s.recommender.config) for s in built if isinstance(s, FullSystem)}
    return report, configs


def write_outputs(report: Report, result: dict, out: Path, title: str) -> None:
    """``report.json``, ``hit_rate.png`` and ``latency.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    plot_hit_rate(report, out / "hit_rate.png", title)
    plot_latency(report, out / "latency.png", title)


def plot_hit_rate(report: Report, path: Path, title: str) -> None:
    """HR@k per window of scored events, every system on one plot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    for result in report.systems:
        ends, rates = result.hit_rate_windows(report.window)
        ax.plot(ends + 1, rates, marker="o", markersize=3, linewidth=1.5,
                label=f"{result.name} (overall {result.metrics['hit_rate']:.3f})")
    ax.set_title(f"HR@{report.k} over time — {title}, windows of {report.window:,} scored events")
    ax.set_xlabel("events replayed")
    ax.set_ylabel(f"HR@{report.k} in the window")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latency(report: Report, path: Path, title: str) -> None:
    """One histogram of recommend + learn time per system, on a shared log axis."""
    plt = _pyplot()
    n = len(report.systems)
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.9 * n + 1.2), sharex=True, layout="constrained", squeeze=False)
    all_us = np.concatenate([r.latency_ns for r in report.systems]) / 1e3 if n else np.ones(1)
    lo, hi = max(float(all_us.min()), 0.1) if len(all_us) else 1.0, float(all_us.max()) if len(all_us) else 10.0
    bins = np.logspace(np.log10(lo) - 0.05, np.log10(hi) + 0.05, 80)
    for ax, result in zip(axes[:, 0], report.systems):
        ax.hist(result.latency_ns / 1e3, bins=bins, color="tab:blue")
        for pct, style in ((50, "--"), (99, ":")):
            ax.axvline(result.latency_us(pct), color="tab:red", linestyle=style,
                       label=f"p{pct} {result.latency_us(pct):,.0f} µs")
        ax.set_xscale("log")
        ax.set_ylabel("events")
        ax.set_title(f"{result.name}: {result.events_per_s:,.0f} events/s", loc="left", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("recommend + learn per event (µs, log scale)")
    fig.suptitle(f"Latency per event — {title}")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``streamrec replay``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", metavar="DIR", help="a MovieLens folder (100K, 1M or latest layout)")
    source.add_argument("--events-jsonl", metavar="FILE", help="events in streamrec's schema, one per line")
    parser.add_argument("--items-jsonl", metavar="FILE", help="items in streamrec's schema (with --events-jsonl)")
    parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, from {','.join(SYSTEMS)} (default all)")
    parser.add_argument("--limit", type=int, help="replay only the first N events")
    parser.add_argument("--warmup", type=int, default=0, help="learn but do not score the first N events")
    parser.add_argument("--score-types", help="score only these event types, e.g. click,purchase")
    parser.add_argument("--window", type=int, default=2000, help="scored events per point of HR over time")
    parser.add_argument("--keep-seen", action="store_true", help="let systems recommend items the user took")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes to spread the systems over (default: up to 2 cores)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--via-kafka", action="store_true",
                        help="replay the full system through the real pipeline (a local Tansu + redis stack, "
                             "one partition, one worker, no trainer), scored as served: see stream.kafka_replay")


def run(args: argparse.Namespace) -> int:
    """``streamrec replay``: load, replay, print the table, write the outputs."""
    if args.items_jsonl and not args.events_jsonl:
        print("--items-jsonl goes with --events-jsonl", file=sys.stderr)
        return 2
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        print(f"unknown systems {unknown}; choose from {','.join(SYSTEMS)}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    dataset = load_movielens(args.movielens, rating_types=RatingTypes()) if args.movielens \
        else load_jsonl(args.events_jsonl, args.items_jsonl)
    load_s = time.perf_counter() - t
    info = dataset.summary()
    print(f"{info['name']}: {info['events']:,} events by {info['users']:,} users on "
          f"{info['items']:,} catalogue items (loaded in {load_s:.1f} s)")
    if dataset.skipped:
        print(f"skipped {sum(dataset.skipped.values()):,} bad lines: "
              + ", ".join(f"{reason} ×{n}" for reason, n in dataset.skipped.items()))
    if not dataset.events:
        print("no events to replay", file=sys.stderr)
        return 1
    score_types = [s.strip() for s in args.score_types.split(",")] if args.score_types else None
    if args.via_kafka:
        return _run_via_kafka(args, dataset, score_types, load_s)
    result = replay(dataset, systems=systems, k=args.k, limit=args.limit, warmup=args.warmup,
                    score_types=score_types, window=args.window, exclude_seen=not args.keep_seen, out=args.out,
                    timings={"load_s": load_s}, jobs=args.jobs)
    protocol = result["protocol"]
    print(f"\nprequential, k={protocol['k']}: {protocol['replayed_events']:,} events replayed, "
          f"{protocol['scored_events']:,} scored (warm-up {protocol['warmup_events']:,}), "
          f"catalogue {protocol['catalogue_size']:,} items")
    print(result["table"])
    print(f"\nreplay {result['timings']['replay_s']:.1f} s, total {result['timings']['total_s']:.1f} s "
          f"(encoding {result['timings'].get('encode_s', 0.0):.1f} s); "
          f"wrote {args.out / 'report.json'}, {args.out / 'hit_rate.png'}, {args.out / 'latency.png'}")
    return 0


def _run_via_kafka(args: argparse.Namespace, dataset: Dataset, score_types: list[str] | None,
                   load_s: float) -> int:
    """``--via-kafka``: only the full system, through a local stack and one worker process."""
    from stream import kafka_replay

    if args.keep_seen:
        print("--keep-seen does not go with --via-kafka: the worker always leaves out items taken", file=sys.stderr)
        return 2
    if args.systems != ",".join(SYSTEMS) and args.systems.strip() != "full":
        print("--via-kafka replays the full system only; ignoring --systems", file=sys.stderr)
    result = kafka_replay.replay(dataset, k=args.k, limit=args.limit, warmup=args.warmup, score_types=score_types,
                                 window=args.window, out=args.out, timings={"load_s": load_s})
    protocol = result["protocol"]
    kafka = result["kafka"]
    print(f"\nvia Kafka (local stack, 1 partition, 1 worker, no trainer), as served, k={protocol['k']}: "
          f"{protocol['replayed_events']:,} events replayed, {protocol['scored_events']:,} scored "
          f"(warm-up {protocol['warmup_events']:,}; users' first events not scored), "
          f"{kafka['recommendations']:,} recommendations, {kafka['dead_lettered']:,} dead-lettered, "
          f"catalogue {protocol['catalogue_size']:,} items")
    print(result["table"])
    e2e = kafka["end_to_end_ms"]
    print(f"latency: worker time per event (its micro-batch's, shared); publish → recommendation "
          f"p50 {e2e['p50']:.1f} ms, p99 {e2e['p99']:.1f} ms")
    print(f"\nreplay {result['timings']['replay_s']:.1f} s, total {result['timings']['total_s']:.1f} s; "
          f"wrote {args.out / 'report.json'}, {args.out / 'hit_rate.png'}, {args.out / 'latency.png'}")
    return 0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on workers or CI
    import matplotlib.pyplot as plt

    return plt


def _jsonable(config) -> dict:
    return {k: (dict(v) if hasattr(v, "items") else v) for k, v in dataclasses.asdict(config).items()}
