"""The Node client's consumer settings vs latency and group-join time: the numbers of docs/clients.md.

LocalStack and one ``streamrec worker`` with a small catalogue encoded; then
clients/node/example.js (kafkajs) runs once per setting, publishing one event
for each of 20 users and reading the answers. Per run: the time to join its
consumer group, publish → answer p50 (the example's own clock) and the last
hop alone, streamrec's ``sent_ts`` → the client has it. Baseline beside it:
kafkajs' defaults (``maxWaitTimeInMs`` 5000, ``sessionTimeout`` 30000).

    .venv/bin/python bench/node_client.py          # ~1.5 min on 2 CPU cores (needs cd clients/node && npm ci)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.datasets.synthetic import make_catalog  # noqa: E402
from stream.harness import produce, start_worker, stop_worker, wait_for_catalogue  # noqa: E402
from stream.stack import LocalStack  # noqa: E402

NODE_DIR = Path(__file__).resolve().parents[1] / "clients" / "node"
#: (maxWaitTimeInMs, sessionTimeout); kafkajs' defaults first: the baseline.
SETTINGS = [(5000, 30000), (5000, 6000), (500, 6000), (100, 6000), (50, 6000), (10, 6000)]


def run(settings, items: list[str], max_wait_ms: int, session_ms: int) -> dict:
    env = {**os.environ, **settings.env(), "EXAMPLE_USERS": ",".join(f"bench{n}" for n in range(20)),
           "EXAMPLE_MAX_WAIT_MS": str(max_wait_ms), "EXAMPLE_SESSION_TIMEOUT_MS": str(session_ms),
           "EXAMPLE_BAD": "0", "EXAMPLE_TIMEOUT_MS": "90000"}
    done = subprocess.run(["node", "example.js", *items], cwd=NODE_DIR, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    answers = [line for line in lines if line["kind"] == "answer" and line["latency_ms"] is not None]
    return {"join_ms": next(line["after_ms"] for line in lines if line["kind"] == "joined"),
            "p50_ms": statistics.median(a["latency_ms"] for a in answers),
            "hop_p50_ms": statistics.median(a["to_client_ms"] for a in answers), "answers": len(answers)}


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="streamrec-node-bench-"))
    catalog = make_catalog(n_categories=2, items_per_category=4, seed=5)
    print("| maxWaitTimeInMs | sessionTimeout | group join ms | publish → answer p50 ms | sent_ts → client p50 ms |"
          "\n|---:|---:|---:|---:|---:|", flush=True)
    with LocalStack(root / "stack") as stack:
        settings = stack.isolated_settings(root, partitions=4)
        worker = start_worker(settings, root / "worker.log")
        try:
            produce(stack.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
            wait_for_catalogue(settings, len(catalog), 120, worker, root / "worker.log")
            for max_wait_ms, session_ms in SETTINGS:
                r = run(settings, [i["item_id"] for i in catalog], max_wait_ms, session_ms)
                baseline = " (kafkajs defaults)" if (max_wait_ms, session_ms) == SETTINGS[0] else ""
                print(f"| {max_wait_ms}{baseline} | {session_ms} | {r['join_ms']} | {r['p50_ms']:.0f} "
                      f"| {r['hop_p50_ms']:.0f} |", flush=True)
        finally:
            stop_worker(worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
