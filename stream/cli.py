"""The ``streamrec`` command line.

``streamrec worker``                 run a Faust worker (settings from STREAMREC_* variables)
``streamrec trainer``                run the trainer: feedback in, ranker snapshots out
``streamrec stack up|down|status``   the embedded local broker + redis-server
``streamrec topics``                 create the topics on the configured broker
``streamrec demo``                   local stack + worker + simulated users, recommendations printed live
``streamrec forget USER_ID``         delete every trace of a user (a request on the forget topic)
``streamrec replay``                 a recorded event log through baselines and the full system (HR@k, latency)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from model.datasets import Dataset, RatingTypes, load_jsonl, load_movielens
from model.threads import limit_blas_threads
from stream import kafka_replay, replay, stack
from stream.demo import run_demo
from stream.forget import request_forget
from stream.settings import DEFAULT_STACK_FILE, STACK_FILE_ENV, Settings
from stream.topics import ensure_topics, topic_specs


def main(argv: list[str] | None = None) -> int:
    limit_blas_threads()
    parser = argparse.ArgumentParser(prog="streamrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a Faust worker")
    worker.add_argument("--loglevel", "-l", default="info", choices=["crit", "error", "warn", "info", "debug"])

    stack_command = sub.add_parser("stack", help="the embedded local broker and redis-server")
    stack_command.add_argument("action", choices=["up", "down", "status"])

    trainer = sub.add_parser("trainer", help="run the trainer (feedback in, ranker snapshots out)")
    trainer.add_argument("--loglevel", "-l", default="info", choices=["crit", "error", "warn", "info", "debug"])

    sub.add_parser("topics", help="create streamrec's topics on the configured broker")

    demo = sub.add_parser("demo", help="run the end-to-end demo on a local stack")
    demo.add_argument("--users", type=int, default=40)
    demo.add_argument("--events", type=int, default=3000)
    demo.add_argument("--rate", type=float, default=200.0, help="events per second")
    demo.add_argument("--seed", type=int, default=0)

    forget = sub.add_parser("forget", help="delete every trace of a user (the workers act on the request)")
    forget.add_argument("user_id")

    _replay_arguments(sub.add_parser("replay", help="prequential replay of a recorded event log"))

    args = parser.parse_args(argv)
    # Client libraries are chatty at INFO; the commands print what matters themselves.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack_file = Path(os.environ.get(STACK_FILE_ENV, DEFAULT_STACK_FILE))

    # The apps are built when their module is imported: only the command that runs one imports it.
    if args.command == "worker":
        from stream.app import app

        sys.argv = ["streamrec", "worker", "--loglevel", args.loglevel, "--without-web"]
        app.main()
    elif args.command == "trainer":
        from stream.trainer import app

        sys.argv = ["streamrec", "worker", "--loglevel", args.loglevel, "--without-web"]
        app.main()
    elif args.command == "stack":
        if args.action == "up":
            info = stack.stack_up(stack_file, Settings.from_env())
            print(json.dumps(info, indent=2))
            print(f"# settings are read from {stack_file}; or export:")
            print(f"export STREAMREC_BROKER={info['broker']} STREAMREC_REDIS_URL={info['redis_url']}")
        elif args.action == "down":
            print("stopped" if stack.stack_down(stack_file) else "no stack was running")
        else:
            print(json.dumps(stack.stack_status(stack_file), indent=2))
    elif args.command == "topics":
        settings = Settings.from_env()
        ensure_topics(settings.bootstrap_servers, topic_specs(settings))
        print("topics ready:", ", ".join(name for name, _, _ in topic_specs(settings)))
    elif args.command == "demo":
        return run_demo(users=args.users, events=args.events, rate=args.rate, seed=args.seed)
    elif args.command == "forget":
        settings = Settings.from_env()
        try:
            request_forget(settings, args.user_id)
        except ValueError as err:  # InvalidInput: an id that no valid event could carry
            parser.error(str(err))
        print(f"forget requested on {settings.forget_topic}; a null recommendation keyed by the user confirms it")
    elif args.command == "replay":
        return _replay(args)
    return 0


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``streamrec replay``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", metavar="DIR", help="a MovieLens folder (100K, 1M or latest layout)")
    source.add_argument("--events-jsonl", metavar="FILE", help="events in streamrec's schema, one per line")
    parser.add_argument("--items-jsonl", metavar="FILE", help="items in streamrec's schema (with --events-jsonl)")
    parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--systems", default=",".join(replay.SYSTEMS),
                        help=f"comma-separated, from {','.join(replay.SYSTEMS)} (default all)")
    parser.add_argument("--limit", type=int, help="replay only the first N events")
    parser.add_argument("--warmup", type=int, default=0, help="learn but do not score the first N events")
    parser.add_argument("--score-types", help="score only these event types, e.g. click,purchase")
    parser.add_argument("--window", type=int, default=2000, help="scored events per point of HR over time")
    parser.add_argument("--keep-seen", action="store_true", help="let systems recommend items the user took")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes to spread the systems over (default: up to 2 cores)")
    parser.add_argument("--out", type=Path, default=replay.DEFAULT_OUT,
                        help=f"output folder (default {replay.DEFAULT_OUT})")
    parser.add_argument("--via-kafka", action="store_true",
                        help="replay the full system through the real pipeline (a local Tansu + redis stack, "
                             "one partition, one worker, no trainer), scored as served: see stream.kafka_replay")


def _replay(args: argparse.Namespace) -> int:
    """``streamrec replay``: load, replay, print the table, write the outputs."""
    if args.items_jsonl and not args.events_jsonl:
        print("--items-jsonl goes with --events-jsonl", file=sys.stderr)
        return 2
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in replay.SYSTEMS]
    if unknown or not systems:
        print(f"unknown systems {unknown}; choose from {','.join(replay.SYSTEMS)}", file=sys.stderr)
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
    result = replay.replay(dataset, systems=systems, k=args.k, limit=args.limit, warmup=args.warmup,
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
    if args.keep_seen:
        print("--keep-seen does not go with --via-kafka: the worker always leaves out items taken", file=sys.stderr)
        return 2
    if args.systems != ",".join(replay.SYSTEMS) and args.systems.strip() != "full":
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


if __name__ == "__main__":
    sys.exit(main())
