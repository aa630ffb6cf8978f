"""The ``streamrec`` command line: one sub-command per thing a user does.

Every failure a user can cause (no broker, a wrong address, a bad file, an
id no event could carry) ends the command with one line naming what failed,
where, and the fix, and a non-zero exit status (:class:`UserError`).
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
from model.schema import InvalidInput
from model.threads import limit_blas_threads
from stream import kafka_replay, replay, stack
from stream.codec import decode_forget, encode_forget
from stream.demo import run_demo
from stream.forget import request_forget
from stream.preflight import Unreachable, check_broker, check_redis
from stream.settings import DEFAULT_STACK_FILE, STACK_FILE_ENV, Settings
from stream.topics import ensure_topics, topic_specs

DESCRIPTION = """\
A streaming, real-time recommender: behaviour events in from Kafka, explained
recommendations out. `streamrec COMMAND --help` tells more about each command.

Settings come from STREAMREC_* environment variables, then from the stack
file that `streamrec stack up` writes (.streamrec/stack.json, or
$STREAMREC_STACK_FILE), then the defaults. `streamrec settings` lists them.
"""

SETTINGS_EPILOG = """\
Where it connects: STREAMREC_BROKER (default kafka://127.0.0.1:9092) and
STREAMREC_REDIS_URL (default redis://127.0.0.1:6379/0), or the stack file that
`streamrec stack up` writes. Every other knob is a STREAMREC_* variable too:
`streamrec settings` prints them all with their values.
"""

#: Faust's log level names, and the usual spellings people type for them.
LOG_LEVELS = {"crit": "crit", "critical": "crit", "error": "error", "warn": "warn", "warning": "warn",
              "info": "info", "debug": "debug"}


class UserError(Exception):
    """A failure the user can fix; its message is the one line printed (exit status 1)."""


class UsageError(UserError):
    """Options that do not go together or name nothing (exit status 2, as argparse's own)."""


def main(argv: list[str] | None = None) -> int:
    limit_blas_threads()
    parser = _parser()
    args = parser.parse_args(argv)
    # Client libraries are chatty at INFO; the commands print what matters themselves.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ValueError) as exc:  # ValueError: a bad setting or file, which the message names
        print(f"streamrec {args.command}: {exc}", file=sys.stderr)
        return 2
    except (UserError, Unreachable, stack.StackError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"streamrec {args.command}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, description: str = "", epilog: str = SETTINGS_EPILOG):
        return sub.add_parser(name, help=summary, description=description or summary, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    for name, summary, description in (
        ("worker", "run a worker (consumes events, items and forget requests)",
         "Run a Faust worker: it consumes events (and events.rekeyed), items and users.forget, keeps users'\n"
         "state in Redis and publishes recommendations, dead letters and feedback. Run one per machine,\n"
         "up to the partition count (STREAMREC_PARTITIONS)."),
        ("trainer", "run the trainer (feedback in, ranker snapshots out)",
         "Run the trainer: it learns the feedback topic (one partition: one trainer learns, another waits\n"
         "as a hot standby) and publishes ranker snapshots every STREAMREC_SNAPSHOT_INTERVAL_S seconds."),
    ):
        p = command(name, summary, description)
        p.add_argument("--loglevel", "-l", default="info", type=str.lower, choices=sorted(LOG_LEVELS),
                       metavar="LEVEL", help="crit, error, warn(ing), info (default) or debug")

    p = command("stack", "start, stop or inspect a local broker and redis-server",
                "up: start a Tansu broker (Kafka protocol) and a redis-server on free loopback ports, detached,\n"
                "    and write their addresses to the stack file (.streamrec/stack.json, or $STREAMREC_STACK_FILE),\n"
                "    where every later streamrec command finds them;\n"
                "down: stop them; status: say whether they run, and where. Data lives in memory only.",
                epilog="")
    p.add_argument("action", choices=["up", "down", "status"], help="up, down or status")

    command("topics", "create streamrec's topics on the configured broker",
            "Create streamrec's topics on the configured broker with explicit partition counts (a broker would\n"
            "otherwise auto-create them with its own). Refuses a topic that exists with another count.")
    command("settings", "print every setting as the STREAMREC_* variable that sets it",
            "Print every setting as the STREAMREC_* variable that sets it, with its value here.", epilog="")

    p = command("demo", "the whole loop on a local stack, with simulated users",
                "Start a local stack, a worker and a trainer; publish a generated catalogue and events from\n"
                "simulated users whose interests drift; print recommendations live and what was measured.",
                epilog="")
    p.add_argument("--users", type=int, default=40, help="simulated users (default 40)")
    p.add_argument("--events", type=int, default=3000, help="events to publish (default 3000)")
    p.add_argument("--rate", type=float, default=200.0, help="events per second (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the catalogue and the users (default 0)")

    p = command("forget", "delete every trace of a user",
                "Ask the worker that owns the user to delete every per-user key in Redis; it confirms with a\n"
                "null (tombstone) recommendation keyed by the user.")
    p.add_argument("user_id", help="the id the user's events carry")

    _replay_arguments(command("replay", "replay a recorded event log through the baselines and full system",
                              "Replay a recorded event log prequentially (each event scored before it is\n"
                              "learned) through the baselines and the full system; print HR@k, NDCG@k, MRR\n"
                              "and latency, and write report.json and plots.", epilog=""))
    return parser


def _settings() -> Settings:
    return Settings.from_env()


def _run_app(module: str, args: argparse.Namespace, *, redis_needed: bool = True) -> int:
    settings = _settings()
    check_broker(settings)
    if redis_needed:
        check_redis(settings)
    # The apps are built when their module is imported: only the command that runs one imports it.
    if module == "worker":
        from stream.app import app
    else:
        from stream.trainer import app
    sys.argv = ["streamrec", "worker", "--loglevel", LOG_LEVELS[args.loglevel], "--without-web"]
    app.main()
    return 0


def _stack(args: argparse.Namespace) -> int:
    stack_file = Path(os.environ.get(STACK_FILE_ENV, DEFAULT_STACK_FILE))
    if args.action == "up":
        info = stack.stack_up(stack_file, _settings())
        print(json.dumps(info, indent=2))
        print(f"# settings are read from {stack_file}; or export:")
        print(f"export STREAMREC_BROKER={info['broker']} STREAMREC_REDIS_URL={info['redis_url']}")
    elif args.action == "down":
        print("stopped" if stack.stack_down(stack_file) else "no stack was running")
    else:
        print(json.dumps(stack.stack_status(stack_file), indent=2))
    return 0


def _topics(args: argparse.Namespace) -> int:
    settings = _settings()
    check_broker(settings)
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    print("topics ready:", ", ".join(name for name, _, _ in topic_specs(settings)))
    return 0


def _print_settings(args: argparse.Namespace) -> int:
    for name, value in sorted(_settings().env().items()):
        print(f"{name}={value}")
    return 0


def _forget(args: argparse.Namespace) -> int:
    try:
        decode_forget(encode_forget(args.user_id))  # refuse here what the worker would dead-letter
    except InvalidInput as err:
        raise UserError(f"{args.user_id!r} cannot be a user id: {err.explain()}; give the id the user's "
                        "events carry") from None
    settings = _settings()
    check_broker(settings)
    request_forget(settings, args.user_id)
    print(f"forget requested on {settings.forget_topic}; a null recommendation keyed by the user confirms it")
    return 0


def _demo(args: argparse.Namespace) -> int:
    return run_demo(users=args.users, events=args.events, rate=args.rate, seed=args.seed)


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
    parser.add_argument("--batch", type=int, help="events per micro-batch, split into waves of distinct users "
                        "as a worker does (default STREAMREC_BATCH_MAX, 256; 1: event by event)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes to spread the systems over (default: up to 2 cores)")
    parser.add_argument("--out", type=Path, default=replay.DEFAULT_OUT,
                        help=f"output folder (default {replay.DEFAULT_OUT})")
    parser.add_argument("--via-kafka", action="store_true",
                        help="replay the full system through the real pipeline (a local Tansu + redis stack, "
                             "one partition, one worker, no trainer), scored as served: see stream.kafka_replay")
    parser.add_argument("--workers", type=int, default=1,
                        help="with --via-kafka: partitions and worker processes, users hashed over them as "
                             "deployed (default 1; STREAMREC_SHARED_PAIRS=0 keeps each worker's pairs its own)")
    parser.add_argument("--trainer", action="store_true",
                        help="with --via-kafka: run a trainer too, as deployed (the ranker and the item space "
                             "learn and the workers hot-swap them; figures then depend on timing)")


def _replay(args: argparse.Namespace) -> int:
    """``streamrec replay``: load, replay, print the table, write the outputs."""
    if args.items_jsonl and not args.events_jsonl:
        raise UsageError("--items-jsonl goes with --events-jsonl")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in replay.SYSTEMS]
    if unknown or not systems:
        raise UsageError(f"unknown systems {unknown}; choose from {','.join(replay.SYSTEMS)}")
    if args.workers != 1 and not args.via_kafka:
        raise UsageError("--workers goes with --via-kafka (the in-process replay is one worker)")
    if args.trainer and not args.via_kafka:
        raise UsageError("--trainer goes with --via-kafka (the in-process replay learns in process already)")
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
        raise UserError(f"no events to replay in {args.movielens or args.events_jsonl}")
    score_types = [s.strip() for s in args.score_types.split(",")] if args.score_types else None
    if args.via_kafka:
        return _run_via_kafka(args, dataset, score_types, load_s)
    result = replay.replay(dataset, systems=systems, k=args.k, limit=args.limit, warmup=args.warmup,
                    score_types=score_types, window=args.window, exclude_seen=not args.keep_seen, out=args.out,
                    batch=args.batch,
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
        raise UsageError("--keep-seen does not go with --via-kafka: the worker always leaves out items taken")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {args.workers})")
    if args.systems != ",".join(replay.SYSTEMS) and args.systems.strip() != "full":
        print("--via-kafka replays the full system only; ignoring --systems", file=sys.stderr)
    result = kafka_replay.replay(dataset, k=args.k, limit=args.limit, warmup=args.warmup, score_types=score_types,
                                 window=args.window, out=args.out, timings={"load_s": load_s}, workers=args.workers,
                                 trainer=args.trainer)
    protocol = result["protocol"]
    kafka = result["kafka"]
    shared = "shared" if result["settings"]["shared_pairs"] else "each worker's own"
    print(f"\nvia Kafka (local stack, {args.workers} partition(s), {args.workers} worker(s), item-item counts "
          f"{shared}, {'a trainer' if args.trainer else 'no trainer'}), as served, k={protocol['k']}: "
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


COMMANDS = {
    "worker": lambda args: _run_app("worker", args),
    "trainer": lambda args: _run_app("trainer", args),
    "stack": _stack,
    "topics": _topics,
    "settings": _print_settings,
    "demo": _demo,
    "forget": _forget,
    "replay": lambda args: _replay(args),
}


if __name__ == "__main__":
    sys.exit(main())
