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
from pathlib import Path

from model.threads import limit_blas_threads
from stream.settings import DEFAULT_STACK_FILE, STACK_FILE_ENV, Settings


def main(argv: list[str] | None = None) -> int:
    limit_blas_threads()
    parser = argparse.ArgumentParser(prog="streamrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run a Faust worker")
    worker.add_argument("--loglevel", "-l", default="info", choices=["crit", "error", "warn", "info", "debug"])

    stack = sub.add_parser("stack", help="the embedded local broker and redis-server")
    stack.add_argument("action", choices=["up", "down", "status"])

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

    from stream import replay as replay_command

    replay_command.add_arguments(sub.add_parser("replay", help="prequential replay of a recorded event log"))

    args = parser.parse_args(argv)
    # Client libraries are chatty at INFO; the commands print what matters themselves.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack_file = Path(os.environ.get(STACK_FILE_ENV, DEFAULT_STACK_FILE))

    if args.command == "worker":
        from stream.app import app

        sys.argv = ["streamrec", "worker", "--loglevel", args.loglevel, "--without-web"]
        app.main()
    elif args.command == "trainer":
        from stream.trainer import app

        sys.argv = ["streamrec", "worker", "--loglevel", args.loglevel, "--without-web"]
        app.main()
    elif args.command == "stack":
        from stream import stack as local

        if args.action == "up":
            info = local.stack_up(stack_file, Settings.from_env())
            print(json.dumps(info, indent=2))
            print(f"# settings are read from {stack_file}; or export:")
            print(f"export STREAMREC_BROKER={info['broker']} STREAMREC_REDIS_URL={info['redis_url']}")
        elif args.action == "down":
            print("stopped" if local.stack_down(stack_file) else "no stack was running")
        else:
            print(json.dumps(local.stack_status(stack_file), indent=2))
    elif args.command == "topics":
        from stream.topics import ensure_topics, topic_specs

        settings = Settings.from_env()
        ensure_topics(settings.bootstrap_servers, topic_specs(settings))
        print("topics ready:", ", ".join(name for name, _, _ in topic_specs(settings)))
    elif args.command == "demo":
        from stream.demo import run_demo

        return run_demo(users=args.users, events=args.events, rate=args.rate, seed=args.seed)
    elif args.command == "forget":
        from stream.forget import request_forget

        settings = Settings.from_env()
        try:
            request_forget(settings, args.user_id)
        except ValueError as err:  # InvalidInput: an id that no valid event could carry
            parser.error(str(err))
        print(f"forget requested on {settings.forget_topic}; a null recommendation keyed by the user confirms it")
    elif args.command == "replay":
        return replay_command.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
