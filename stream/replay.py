"""``streamrec replay``: a recorded event log, replayed in-process through the baselines and the full system.

Encodes every item text of a dataset (:mod:`model.datasets`) once with the
same encoder the workers use, builds the systems
(:mod:`model.evaluate.baselines`; the full one from the same settings as a
worker), runs the prequential protocol (:mod:`model.evaluate.prequential`)
and writes the report and plots (:mod:`stream.report`). The command line is
:mod:`stream.cli`'s; ``--via-kafka`` replays through the pipeline instead
(:mod:`stream.kafka_replay`).

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

import concurrent.futures
import dataclasses
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.datasets import Dataset
from model.evaluate.baselines import (
    ContentOnly,
    CoVisitation,
    DecayedPopular,
    FullSystem,
    MostPopular,
    System,
    item_knn,
    symmetric_covisitation,
)
from model.evaluate.prequential import Report, prequential
from model.recommender import Recommender
from model.threads import limit_blas_threads
from stream.report import finish
from stream.settings import Settings

#: The systems ``--systems`` may name, in the order reports list them.
SYSTEMS = ("popular", "decayed", "covisit", "covisit-sym", "item-knn", "content", "full")
#: Systems that read item text vectors (the encoder is loaded only for them).
NEEDS_VECTORS = {"content", "full"}
DEFAULT_OUT = Path("results") / "replay"
#: Rough cost of one event per system (µs on ml-100k, 2 cores), to balance ``jobs`` processes.
COST_US = {"popular": 50, "decayed": 50, "covisit": 60, "covisit-sym": 250, "item-knn": 600, "content": 1100,
           "full": 2000}
#: Content-only keeps the user's whole history: a year.
CONTENT_HALF_LIFE_S = 365 * 86400.0


def build_systems(names: Sequence[str], settings: Settings, dim: int, *, exclude_seen: bool = True,
                  content_half_life_s: float = CONTENT_HALF_LIFE_S) -> list[System]:
    """The named systems, configured from ``settings`` where the stream has the same knob.

    Baselines share the full system's knobs (popularity and co-visitation half-lives): a
    lift measured against a worse-tuned baseline is not a lift.
    """
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    config = settings.model  # the worker's own config, so the replay measures the model as it serves
    popularity_half_life = config.popularity_half_life_s
    make = {
        "popular": lambda: MostPopular(exclude_seen=exclude_seen),
        "decayed": lambda: DecayedPopular(popularity_half_life, exclude_seen=exclude_seen),
        # Directed pairs seeded by the last 5 items, as first defined: the full system's
        # covisit_seeds (20) belong to its item-kNN-style rule, which covisit-sym and item-knn measure.
        "covisit": lambda: CoVisitation(config.covisit_half_life_s, n_recent=5,
                                        popularity_half_life_s=popularity_half_life, exclude_seen=exclude_seen),
        "covisit-sym": lambda: symmetric_covisitation(exclude_seen=exclude_seen),
        "item-knn": lambda: item_knn(exclude_seen=exclude_seen),
        "content": lambda: ContentOnly(dim, content_half_life_s, exclude_seen=exclude_seen),
        "full": lambda: FullSystem(Recommender(
            dataclasses.replace(config, exclude_seen=exclude_seen), dim)),
    }
    return [make[name]() for name in names]


def replay(dataset: Dataset, *, systems: Sequence[str] = SYSTEMS, k: int = 10, limit: int | None = None,
           warmup: int = 0, score_types: Sequence[str] | None = None, window: int = 2000,
           exclude_seen: bool = True, settings: Settings | None = None, encoder=None,
           out: str | Path | None = None, progress: bool = True, timings: dict[str, float] | None = None,
           jobs: int = 1, batch: int | None = None) -> dict:
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
    # Events go through in micro-batches as a worker takes them (its batch_max), unless told otherwise.
    batch = settings.batch_max if batch is None else batch
    protocol = dict(k=k, limit=limit, warmup=warmup, score_types=score_types, catalogue_size=catalogue, window=window,
                    batch=batch)
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
    result["protocol"]["batch"] = batch
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


def _jsonable(config) -> dict:
    return {k: (dict(v) if hasattr(v, "items") else v) for k, v in dataclasses.asdict(config).items()}
