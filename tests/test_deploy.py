"""deploy/: the Prometheus config and alert rules (through promtool) and the Grafana dashboard.

Every metric name an alert or a panel queries must be one streamrec really
exports (:data:`stream.metrics.REGISTRY`), so a renamed metric cannot silently
blank a panel or disarm an alert.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from stream import metrics
from tests.promql import SCRAPE_SERIES, exported_names, metric_names

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "streamrec.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
ALERTS = {"StreamrecWorkerDown", "StreamrecNoEventsConsumed", "StreamrecDeadLetterRateHigh",
          "StreamrecLatencyP99High", "StreamrecConsumerLagGrowing", "StreamrecOnlineHitRateCollapsing"}

promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                              reason="promtool not installed (`make servers` installs Debian's prometheus)")


def run_promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def known_names() -> set[str]:
    return exported_names(metrics.REGISTRY) | SCRAPE_SERIES


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@promtool
def test_prometheus_config_and_rules_pass_promtool():
    assert "SUCCESS" in run_promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in run_promtool("check", "rules", "alerts.yml")


@promtool
def test_alert_rules_pass_their_unit_tests():
    assert "SUCCESS" in run_promtool("test", "rules", "alerts_test.yml")


def test_every_alert_is_unit_tested_firing_and_not_firing():
    names = {rule["alert"] for rule in alert_rules()}
    assert names == ALERTS
    cases: dict[str, set[bool]] = {name: set() for name in names}
    for test in yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases[case["alertname"]].add(bool(case.get("exp_alerts")))
    assert {name: seen for name, seen in cases.items() if seen != {True, False}} == {}


def test_alerts_query_only_exported_metrics():
    for rule in alert_rules():
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known_names(), (rule["alert"], used - known_names())
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_scrapes_the_workers_and_loads_the_rules():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    worker = jobs["streamrec-worker"]
    assert worker["dns_sd_configs"][0]["names"] == ["worker"]
    assert worker["dns_sd_configs"][0]["port"] == 8000


def dashboard_panels() -> list[dict]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels folded into a row
    return panels


def test_dashboard_has_the_structure_grafana_expects():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    uid = next(d["uid"] for d in datasources if d["type"] == "prometheus")
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["type"] in ("timeseries", "stat", "gauge", "table", "bargauge")
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid) and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        cells = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        assert panel["datasource"]["uid"] == uid
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == uid


def test_dashboard_queries_only_exported_metrics_and_covers_the_essentials():
    used: set[str] = set()
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= known_names(), (panel["title"], names - known_names())
            used |= names
    essentials = {
        "throughput": "streamrec_events_total",
        "latency": "streamrec_ingest_to_recommendation_seconds_bucket",
        "DLQ": "streamrec_dead_letters_total",
        "lag": "streamrec_consumer_lag",
        "encoder": "streamrec_encoder_batch_seconds_bucket",
        "encoder cache": "streamrec_encoder_cache_hits_total",
        "hit rate": "streamrec_feedback_total",
    }
    assert {what: name for what, name in essentials.items() if name not in used} == {}


def test_grafana_provisioning_loads_the_dashboard_folder():
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "streamrec.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
