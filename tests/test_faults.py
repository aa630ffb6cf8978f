"""The fault suite (bench/faults.py) at CI size: every scenario must lose nothing and apply nothing twice.

Real Tansu broker, real redis-server with an append-only file, real worker
processes: SIGKILL and restart, Redis stopped and restarted mid-stream, two
workers of which one is killed (rebalance), ~5 % poison of every kind, ~5 % payloads far over the
size limit (which once stopped the agent). Each
run's final Redis state and answered event_ids are compared with a clean run
of the same log. `python bench/faults.py` runs the same at full size.
"""

from __future__ import annotations

import pytest

from bench.faults import SCENARIOS, suite

pytestmark = pytest.mark.integration


def test_no_event_is_lost_or_applied_twice_under_faults(tmp_path):
    results = suite(SCENARIOS, events=400, users=20, kills=2, seed=3, workdir=tmp_path)
    assert [r.scenario for r in results] == list(SCENARIOS)
    for r in results:
        assert (r.lost, r.applied_twice, r.diverged_users) == (0, 0, 0), r
        assert r.pairs_compared > 0 and (r.pairs_lost, r.pairs_twice) == (0, 0), r
        assert r.applied_once == 400
    by_name = {r.scenario: r for r in results}
    assert by_name["kill"].answered_again > 0          # the kills really did cause redeliveries
    assert sum(by_name["poison"].dead_lettered.values()) == 20
    assert by_name["oversized"].dead_lettered == {"oversized": 20}
