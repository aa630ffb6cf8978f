"""docker-compose.yml checked against the code, without a Docker engine.

It must agree with what the code reads (every STREAMREC_* variable is a
Settings field), with the topic layout (partition counts), and with deploy/
(Prometheus mounts its config and rules, Grafana its provisioning), and the
worker must be able to scale.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stream.settings import STACK_FILE_ENV, Settings

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(r"^[\w./-]+:(?!latest$)v?\d[\w.-]*$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def host_ports(service: dict) -> list[str]:
    """The host side of each published port."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append(str(port.get("published", "")))
        else:
            parts = str(port).split(":")
            if len(parts) >= 2:  # "HOST:CONTAINER" or "IP:HOST:CONTAINER"; a bare port gets a random one
                out.append(parts[-2])
    return [p for p in out if p]


def mounts(service: dict) -> dict[str, str]:
    """Bind mounts: target → source (relative to the repository root)."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[target] = str(Path(source))
    return out


def test_every_service_has_a_pinned_image_or_a_build(services):
    for name, service in services.items():
        image = service.get("image")
        assert image or "build" in service, name
        if "build" in service:
            dockerfile = ROOT / service["build"].get("context", ".") / service["build"].get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), (name, dockerfile)
        else:
            assert PINNED.match(image), f"{name}: pin a version tag, not {image!r}"


def test_streamrec_variables_are_settings_the_code_reads(services):
    known = set(Settings().env()) | {STACK_FILE_ENV}
    used = {var for service in services.values() for var in environment(service) if var.startswith("STREAMREC_")}
    assert used, "the streamrec services take their settings from the environment"
    assert used <= known, used - known
    # And each value parses as that setting.
    for service in services.values():
        env = {k: v for k, v in environment(service).items() if k.startswith("STREAMREC_")}
        Settings.from_env({**env, STACK_FILE_ENV: "/nonexistent"})
    # The same variables are set in the image (deploy/Dockerfile ENV lines).
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert set(re.findall(r"\bSTREAMREC_[A-Z0-9_]+", dockerfile)) <= known


def test_host_ports_do_not_clash(services):
    ports = [port for service in services.values() for port in host_ports(service)]
    assert len(ports) == len(set(ports)), ports


def test_topics_job_and_workers_agree_with_the_codes_partitions(services):
    topics, worker = services["topics"], services["worker"]
    assert topics["command"] == ["topics"] and worker["command"] == ["worker"]
    partitions = {name: int(environment(services[name]).get("STREAMREC_PARTITIONS", Settings.partitions))
                  for name in ("topics", "worker", "trainer")}
    assert set(partitions.values()) == {Settings.partitions}, partitions
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    replicas = worker.get("deploy", {}).get("replicas", 1)
    assert 1 <= replicas <= Settings.partitions, "more workers than partitions would sit idle"
    # Topics are only ever created by the job, with explicit partition counts.
    assert environment(services["kafka"])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_worker_scales_and_is_scraped(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed name stops `--scale worker=N`"
    assert not worker.get("ports"), "a host port clashes as soon as there are two workers"
    env = environment(worker)
    port = int(env["STREAMREC_METRICS_PORT"])
    assert port and env["STREAMREC_METRICS_ADDR"] == "0.0.0.0"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    dns = next(job for job in scrape if job["job_name"] == "streamrec-worker")["dns_sd_configs"][0]
    assert dns["names"] == ["worker"] and dns["port"] == port
    assert "healthcheck" in worker


def test_prometheus_mounts_its_config_and_alert_rules(services):
    prometheus = services["prometheus"]
    bound = mounts(prometheus)
    assert bound["/etc/prometheus/prometheus.yml"] == "deploy/prometheus.yml"
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["rule_files"]
    for rule_file in rules:
        assert bound[f"/etc/prometheus/{rule_file}"] == f"deploy/{rule_file}"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_gets_the_provisioning_and_the_dashboard(services):
    bound = mounts(services["grafana"])
    assert bound["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/streamrec.yml").read_text())
    assert bound[providers["providers"][0]["options"]["path"]] == "deploy/grafana/dashboards"


def test_kafka_redis_and_the_trainer_are_there_with_healthchecks(services):
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert environment(services["kafka"])["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["trainer"]["command"] == ["trainer"]
    for name in ("kafka", "redis", "worker", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
