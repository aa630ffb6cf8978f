"""The Node client of docs/clients.md works against a real worker: clients/node/example.js, run as it is.

A real worker process (real encoder) on a real Tansu broker and redis-server,
a small generated catalogue, 4 partitions (so that a partitioner other than
the Java client's would put users elsewhere). The example publishes with
kafkajs, reads `recommendations` and `events.dlq`, and prints what it got;
this test holds that output to the contract (schemas/), by event_id.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import orjson
import pytest

from model.datasets.synthetic import make_catalog
from stream.codec import partition_of
from stream.forget import request_forget
from stream.harness import Collector, produce, start_worker, stop_worker, wait_for, wait_for_catalogue
from tests.nodejs import require_node
from tests.test_contract import validator

pytestmark = pytest.mark.integration

USERS = ["node-ana", "node-ben", "node-cy", "node-dee", "node-eli"]
GONE = "node-gone"


@pytest.fixture(scope="module")
def node_dir():
    return require_node()


def run_example(node_dir, settings, items: list[str], timeout_s: float = 40.0) -> list[dict]:
    env = {**os.environ, **settings.env(), "EXAMPLE_USERS": ",".join(USERS),
           "EXAMPLE_TIMEOUT_MS": str(int(timeout_s * 1000) - 5000)}
    done = subprocess.run(["node", "example.js", *items], cwd=node_dir, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, f"example.js exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "partitioner" not in done.stderr.lower(), done.stderr  # kafkajs' warning: the partitioner is named
    return lines


def test_the_node_example_gets_every_answer_its_dead_letter_and_a_tombstone(node_dir, make_settings, tmp_path):
    started = time.monotonic()
    settings = make_settings(partitions=4)
    catalog = make_catalog(n_categories=2, items_per_category=4, seed=5)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    recs = Collector(settings.bootstrap_servers, settings.recommendations_topic)
    try:
        produce(settings.bootstrap_servers, settings.items_topic, catalog, key=lambda i: i["item_id"])
        wait_for_catalogue(settings, len(catalog), 60, worker, log)
        # A user answered once, then forgotten: the topic the example reads holds a tombstone for them.
        produce(settings.bootstrap_servers, settings.events_topic, [
            {"event_id": "gone-1", "user_id": GONE, "item_id": catalog[0]["item_id"], "type": "view",
             "ts": time.time(), "scene": "home"}])
        wait_for(lambda: any(r and r["event_id"] == "gone-1" for r in recs.records), 30, "the answer to gone-1",
                 worker, log)
        request_forget(settings, GONE)
        wait_for(lambda: None in recs.records, 30, "the tombstone", worker, log)

        lines = run_example(node_dir, settings, [i["item_id"] for i in catalog])
    finally:
        recs.close()
        stop_worker(worker)

    sent = {line["event_id"]: line for line in lines if line["kind"] == "sent"}
    answers = [line for line in lines if line["kind"] == "answer" and line["event_id"] in sent]
    assert sorted(a["event_id"] for a in answers) == sorted(sent), "every valid event got exactly one answer"
    recommendation = validator("recommendation.json")
    for answer in answers:
        assert answer["user_id"] == answer["record"]["user_id"] == sent[answer["event_id"]]["user_id"]
        recommendation.validate(answer["record"])
    # kafkajs' JavaCompatiblePartitioner puts each user where streamrec's owner of the user reads.
    assert {s["user_id"]: s["partition"] for s in sent.values()} == {
        u: partition_of(u.encode(), settings.partitions) for u in USERS}

    [bad] = [line for line in lines if line["kind"] == "sent_bad"]
    [dead] = [line for line in lines if line["kind"] == "dead_letter" and line["event_id"] == bad["event_id"]]
    assert (dead["reason"], dead["field"]) == ("bad_timestamp", "ts")
    validator("dead-letter.json").validate(dead["record"])
    assert orjson.loads(dead["record"]["payload"])["event_id"] == bad["event_id"]

    assert {"kind": "tombstone", "user_id": GONE} in [{k: t[k] for k in ("kind", "user_id")}
                                                      for t in lines if t["kind"] == "tombstone"]
    assert lines[-1] == {"kind": "done", "missing": []}
    print(f"\nnode example: {len(answers)} answers, p50 latency "
          f"{sorted(a['latency_ms'] for a in answers)[len(answers) // 2]} ms; test {time.monotonic() - started:.1f} s")
