"""``streamrec replay --via-kafka``: the full system replayed through the real pipeline, scored "as served".

The stream answers every valid event with one recommendation computed *after*
observing it, so what a user is shown when their event ``n + 1`` happens is the
list sent after their event ``n``. Both runs here score that "as served" list:

- :func:`replay_via_kafka`: a :class:`~stream.stack.LocalStack` (or a given
  broker/redis), one partition and one worker process (or ``workers`` of each:
  users hashed over the partitions exactly as deployed, each worker owning its
  users and sharing the item-item counts through Redis), no trainer (so the
  ranker keeps its prior weights; with one worker the run is deterministic),
  or with ``trainer`` one trainer process as deployed: the ranker and the item
  space learn from the feedback topic and the workers hot-swap them, so the
  figures then depend on how the processes' timing falls.
  The items are published and encoded first, then the events in the file's
  order; every recommendation is collected from the ``recommendations`` topic
  and matched to its event by id.
- :func:`replay_served_in_process`: the same protocol without Kafka:
  a :class:`~model.evaluate.baselines.FullSystem` with the worker's own
  config (``Settings.model``) and ``learn_ranker=False``;
  for each event in order it observes it, then asks for the user's list and
  keeps it as the one served.

Scoring: a user's first event had no list served before it and is **not
scored** (neither are the warm-up events nor, with ``score_types``, the others).
Every other event is scored by the rank of its item in the list served after
the same user's previous event: HR@k, NDCG@k, MRR by
:func:`model.evaluate.prequential.ranking_metrics`. Both runs share :func:`served_result`,
so the per-event ranks compare one to one.

Latency differs by nature: in-process it is the wall time of observe +
recommend per event; via Kafka it is the worker's time per event as the
messages say: the ``sent_ts - received_ts`` of the micro-batch the event came
in (decoding to recommendations ready, Redis round trips included), shared
equally by the batch's events, so that events/s is the worker's throughput.
The end-to-end time (publish → recommendation consumed, which includes
waiting behind the events published before) is reported beside it.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import orjson

from model.datasets import Dataset
from model.evaluate.baselines import FullSystem
from model.evaluate.prequential import Report, SystemResult, rank_of
from model.recommender import Recommender, Request, waves
from model.schema import Event
from stream.harness import Collector, start_worker, stop_worker, wait_for, wait_for_catalogue
from stream.report import finish
from stream.settings import Settings
from stream.stack import LocalStack
from stream.topics import ensure_topics, topic_specs

#: The name of the one system a via-Kafka replay reports.
NAME = "full"


@dataclasses.dataclass
class Served:
    """The lists served after each event, in the stream's order (None: no list came back for it)."""

    events: list[Event]
    lists: list[list[str] | None]
    #: Per event, nanoseconds charged to it (see the module docstring).
    latency_ns: np.ndarray
    extra: dict = dataclasses.field(default_factory=dict)


def served_result(served: Served, *, k: int, warmup: int = 0,
                  score_types: Collection[str] | None = None) -> SystemResult:
    """Score ``served`` "as served": each event by the rank of its item in the user's previous list.

    A user's first event (no list served yet), events before ``warmup`` and,
    with ``score_types``, events of other types are not scored. An event whose
    own list never came back leaves its user's next event scored as a miss
    against an empty list.
    """
    wanted = None if score_types is None else frozenset(score_types)
    last: dict[str, list[str]] = {}
    ranks, positions, lengths = [], [], []
    recommended: set[str] = set()
    for position, (event, after) in enumerate(zip(served.events, served.lists)):
        shown = last.get(event.user_id)
        if shown is not None and position >= warmup and (wanted is None or event.type in wanted):
            shown = shown[:k]
            ranks.append(rank_of(event.item_id, shown))
            positions.append(position)
            lengths.append(len(shown))
            recommended.update(shown)
        last[event.user_id] = after if after is not None else []
    return SystemResult(NAME, np.asarray(ranks, dtype=np.int32), np.asarray(positions, dtype=np.int64),
                        np.asarray(served.latency_ns, dtype=np.int64), recommended,
                        np.asarray(lengths, dtype=np.int32))


def worker_settings(settings: Settings, k: int, workers: int = 1) -> Settings:
    """What a replay needs of the workers: a partition each (one: the file's order), lists of ``k``."""
    return settings.replace(partitions=workers, top_k=k)


def replay_served_in_process(dataset: Dataset, settings: Settings, *, k: int, vectors: np.ndarray,
                             limit: int | None = None, batch_sizes: Sequence[int] | None = None) -> Served:
    """What the worker does, without Kafka: per micro-batch, per wave, observe its events then recommend for all.

    Micro-batches of ``batch_max`` events, or of ``batch_sizes`` (the worker's, as a
    via-Kafka run reports them: it takes what has arrived, and where a batch ends decides
    which other users' counts a list sees), the worker's config, and a ranker that never
    learns (no trainer).
    """
    settings = worker_settings(settings, k)
    events = list(dataset.events[:limit] if limit is not None else dataset.events)
    system = FullSystem(Recommender(settings.model, vectors.shape[1]), learn_ranker=False)
    system.fit_items(dataset.items, vectors)
    lists: list[list[str] | None] = [None] * len(events)
    latency = np.zeros(len(events), dtype=np.int64)
    clock = time.perf_counter_ns
    rec = system.recommender
    batches = -(-len(events) // settings.batch_max)
    sizes = list(batch_sizes) if batch_sizes is not None else [settings.batch_max] * batches
    for first, size in zip(np.cumsum([0, *sizes[:-1]]).tolist(), sizes):
        window = events[first:first + size]
        for wave in waves([event.user_id for event in window]):
            start = clock()
            system.observe_many([window[n] for n in wave])  # learn_ranker=False: the ranker keeps its prior
            answers = rec.recommend_many([Request(system.state(window[n].user_id), window[n].ts, window[n].scene)
                                          for n in wave])
            spent = (clock() - start) // len(wave)
            for n, recs in zip(wave, answers):
                lists[first + n] = [r.item_id for r in recs]
                latency[first + n] = spent
    return Served(events, lists, latency)


def replay_via_kafka(dataset: Dataset, settings: Settings | None = None, *, k: int = 10,
                     limit: int | None = None, workdir: str | Path | None = None,
                     timeout_s: float = 120.0, progress: bool = False, workers: int = 1,
                     trainer: bool = False) -> Served:
    """Publish the items, then the events, to a pipeline of ``workers`` partitions and workers; collect the lists.

    With ``settings`` None a :class:`~stream.stack.LocalStack` is started in
    ``workdir`` (a temporary folder by default) and stopped at the end;
    otherwise ``settings`` must point at a running broker and redis (the
    topics are created if missing; they should be new or empty, and the redis
    prefix unused).
    """
    workdir = Path(tempfile.mkdtemp(prefix="streamrec-kafka-replay-") if workdir is None else workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        return _run_pipeline(dataset, worker_settings(settings, k, workers), limit, workdir, timeout_s, progress,
                             workers, trainer)
    with LocalStack(workdir / "stack") as stack:
        local = dataclasses.replace(Settings.from_env(), broker=stack.broker, redis_url=stack.redis_url,
                                    data_dir=str(workdir / "worker"))
        return _run_pipeline(dataset, worker_settings(local, k, workers), limit, workdir, timeout_s, progress,
                             workers, trainer)


def _run_pipeline(dataset: Dataset, settings: Settings, limit: int | None, workdir: Path, timeout_s: float,
                  progress: bool, workers: int = 1, trainer: bool = False) -> Served:
    from kafka import KafkaProducer
    from tqdm import tqdm

    # A partition per worker: a user's events stay in the file's order on their partition.
    assert settings.partitions == workers, "one partition per worker"
    events = list(dataset.events[:limit] if limit is not None else dataset.events)
    bootstrap = settings.bootstrap_servers
    ensure_topics(bootstrap, topic_specs(settings))
    log_path = workdir / "worker.log"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    # No trainer: the ranker keeps its prior weights (and the item space its version 0).
    processes = [start_worker(settings, log_path) for _ in range(workers)]
    if trainer:
        processes.append(start_worker(settings, workdir / "trainer.log", command="trainer"))
    worker = processes[0]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=settings.producer_batch_bytes)
    answers = Collector(bootstrap, settings.recommendations_topic)
    dead = Collector(bootstrap, settings.dlq_topic)
    try:
        items = list({item.item_id: item for item in dataset.items}.values())
        for item in items:
            producer.send(settings.items_topic, key=item.item_id.encode(), value=orjson.dumps(item.to_dict()))
        producer.flush()
        wait_for_catalogue(settings, len(items), timeout_s, worker, log_path)
        timings["start_and_encode_s"] = time.perf_counter() - t

        t = time.perf_counter()
        sent_at = np.zeros(len(events))
        for n, event in enumerate(events):
            sent_at[n] = time.time()
            producer.send(settings.events_topic, key=event.user_id.encode(), value=orjson.dumps(event.to_dict()))
        producer.flush()
        timings["publish_s"] = time.perf_counter() - t

        with tqdm(total=len(events), desc="recommendations", unit="event", disable=not progress,
                  mininterval=0.5) as bar:
            # ``timeout_s`` bounds a stall, not the run: a long log takes as long as it takes.
            progress_at = [0, time.monotonic()]

            def answered() -> bool:  # (a disabled bar counts nothing: count here)
                done = len({r["event_id"] for r in list(answers.records)}) + len(dead.records)
                bar.update(done - bar.n)
                if done > progress_at[0]:
                    progress_at[:] = [done, time.monotonic()]
                elif time.monotonic() - progress_at[1] > timeout_s:
                    raise TimeoutError(f"no new recommendation for {timeout_s:.0f}s ({done:,} of {len(events):,} "
                                       f"events answered); the workers' log: {log_path}")
                return done >= len(events)

            wait_for(answered, float("inf"), f"{len(events)} recommendations or dead letters", worker, log_path)
        timings["events_s"] = time.perf_counter() - t
    finally:
        answers.close()
        dead.close()
        producer.close()
        for process in processes:
            stop_worker(process)
    served = _match(events, answers.records, answers.received_at, sent_at, dead.records, timings)
    served.extra["workers"] = workers
    return served


def _match(events: Sequence[Event], bodies: list[dict], received_at: list[float], sent_at: np.ndarray,
           dead: list[dict], timings: dict) -> Served:
    """Pair the recommendations with the events by (event id, user id); a redelivered answer counts once."""
    lists: list[list[str] | None] = [None] * len(events)
    latency = np.zeros(len(events), dtype=np.int64)
    end_to_end_ms = []
    versions = set()
    batches: dict[tuple[float, float], list[int]] = {}
    position = {(event.event_id, event.user_id): n for n, event in enumerate(events)}
    known = {event.event_id for event in events}
    matched = 0
    for body, arrived in zip(bodies, received_at):
        n = position.pop((body["event_id"], body["user_id"]), None)
        if n is None:
            if body["event_id"] not in known:
                raise RuntimeError(f"a recommendation for an event not in the log: {body['event_id']!r}")
            continue  # answered again after a rebalance: the first answer stands
        matched += 1
        lists[n] = [i["item_id"] for i in body["items"]]
        batch = (body["received_ts"], body["sent_ts"])
        batches.setdefault(batch, []).append(n)
        end_to_end_ms.append((arrived - sent_at[n]) * 1e3)
        versions.add(body["model_version"])
    for (received, sent), members in batches.items():  # the micro-batch's time, shared by its events
        latency[members] = int(round((sent - received) * 1e9 / len(members)))
    e2e = np.asarray(end_to_end_ms) if end_to_end_ms else np.full(1, np.nan)
    extra = {
        "transport": "kafka",
        "recommendations": matched,
        "dead_lettered": len(dead),
        "dead_letter_reasons": sorted({d.get("reason", "?") for d in dead}),
        "model_versions": sorted(versions),
        "end_to_end_ms": {"p50": float(np.percentile(e2e, 50)), "p99": float(np.percentile(e2e, 99)),
                          "max": float(e2e.max())},
        "latency": "worker time per event: its micro-batch's sent_ts - received_ts / the batch's size",
        "micro_batches": len(batches),
        "batch_sizes": [len(members) for members in sorted(batches.values())],
        "timings": timings,
    }
    return Served(list(events), lists, latency, extra)


def report_of(served: Served, *, k: int, warmup: int, score_types: Collection[str] | None, window: int,
              catalogue_size: int, wall_s: float) -> Report:
    """A :class:`~model.evaluate.Report` with the one "full" system, scored as served."""
    result = served_result(served, k=k, warmup=warmup, score_types=score_types)
    return Report(k=k, systems=[result], replayed=len(served.events), warmup=warmup,
                  score_types=None if score_types is None else tuple(sorted(score_types)),
                  catalogue_size=catalogue_size, window=window, wall_s=wall_s)


def replay(dataset: Dataset, *, k: int = 10, limit: int | None = None, warmup: int = 0,
           score_types: Sequence[str] | None = None, window: int = 2000, settings: Settings | None = None,
           out: str | Path | None = None, timings: dict[str, float] | None = None, progress: bool = True,
           workers: int = 1, trainer: bool = False) -> dict:
    """:func:`replay_via_kafka` scored as served, as a report shaped like :func:`stream.replay.replay`'s.

    ``settings`` None: a local stack is started (see :func:`replay_via_kafka`).
    """

    started = time.perf_counter()
    timings = dict(timings or {})
    served = replay_via_kafka(dataset, settings, k=k, limit=limit, progress=progress, workers=workers,
                              trainer=trainer)
    wall = time.perf_counter() - started
    timings.update(served.extra["timings"])
    catalogue = len({item.item_id for item in dataset.items} | {e.item_id for e in dataset.events})
    report = report_of(served, k=k, warmup=warmup, score_types=score_types, window=window,
                       catalogue_size=catalogue, wall_s=wall)
    timings["replay_s"] = wall
    result = report.to_dict()
    result["protocol"]["limit"] = limit
    result["protocol"]["scoring"] = ("as served: each event against the list sent after the same user's "
                                     "previous event; a user's first event is not scored")
    result["protocol"]["latency"] = served.extra["latency"]
    result["transport"] = "kafka"
    result["kafka"] = {key: v for key, v in served.extra.items() if key not in ("timings", "latency")}
    result["dataset"] = dataset.summary()
    shared = settings.shared_pairs if settings is not None else Settings.from_env().shared_pairs
    result["settings"] = {"systems": [NAME], "exclude_seen": True, "partitions": workers, "workers": workers,
                          "shared_pairs": shared, "trainer": trainer, "top_k": k}
    return finish(report, result, timings, started, out,
                  title=f"{dataset.name} via Kafka, {workers} worker{'s' * (workers > 1)}")
