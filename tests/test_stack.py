"""The embedded local stack (Tansu + redis-server) and topic creation, end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from stream.settings import STACK_FILE_ENV, Settings
from stream.stack import (
    LocalStack,
    StackError,
    _pid_alive,
    stack_down,
    stack_status,
    stack_up,
)
from stream.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.integration


def test_stack_answers(stack, redis_client):
    assert stack.broker == f"kafka://{stack.bootstrap_servers}"
    assert stack.redis_url.startswith("redis://127.0.0.1:") and stack.redis_url.endswith("/0")
    assert redis_client.ping()
    info = stack.to_json()
    assert {"broker", "redis_url", "broker_pid", "redis_pid", "workdir"} <= info.keys()
    assert _pid_alive(info["broker_pid"]) and _pid_alive(info["redis_pid"])
    assert (stack.workdir / "broker.log").is_file() and (stack.workdir / "redis.log").is_file()


def test_topics_have_partitions_and_items_is_compacted(make_settings, stack):
    settings = make_settings(partitions=3)
    names = [name for name, _, _ in topic_specs(settings)]
    assert names == [
        settings.events_topic,
        settings.rekeyed_topic,
        settings.items_topic,
        settings.recommendations_topic,
        settings.dlq_topic,
        settings.forget_topic,
        settings.feedback_topic,
        settings.snapshots_topic,
    ]
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        single = {settings.feedback_topic, settings.snapshots_topic}  # one trainer, in order
        assert counts == {name: 1 if name in single else 3 for name in names}
        # Tansu reports configs given at creation as DEFAULT_CONFIG, so the
        # default filter ("modified") returns nothing: ask for all of them.
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.items_topic)], config_filter="all"
        )["topic"][settings.items_topic]
        assert configs["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()

    # Idempotent, and a count mismatch on an existing topic is refused.
    ensure_topics(stack.bootstrap_servers, topic_specs(settings))
    with pytest.raises(ValueError, match="partition counts"):
        ensure_topics(stack.bootstrap_servers, [(settings.events_topic, 5, {})])


def test_keyed_produce_and_group_consume(make_settings):
    settings = make_settings()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    sent = [(f"user-{i % 4}".encode(), f"event-{i}".encode()) for i in range(20)]
    for key, value in sent:
        producer.send(settings.events_topic, key=key, value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        settings.events_topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.app_id,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    got = []
    partition_of: dict[bytes, set[int]] = {}
    try:
        deadline = time.monotonic() + 20
        while len(got) < len(sent) and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    got.append((record.key, record.value))
                    partition_of.setdefault(record.key, set()).add(tp.partition)
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)
    # Same key, same partition: per-user order holds.
    assert all(len(parts) == 1 for parts in partition_of.values())


def test_redis_restart_on_same_port_and_stop_leaves_nothing(tmp_path):
    stack = LocalStack(tmp_path / "private").start()
    try:
        port, old_pid = stack.redis_port, stack.redis_pid
        client = redis.Redis.from_url(stack.redis_url, socket_timeout=1)
        client.set("k", "v")

        stack.stop_redis()
        assert not stack.redis_running and not _pid_alive(old_pid)
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert stack.broker_running  # only redis went away

        stack.start_redis()
        assert stack.redis_port == port and stack.redis_pid != old_pid
        assert client.ping()  # redis-py reconnects to the same address
        assert client.get("k") is None  # nothing was persisted
        client.close()

        pids = [stack.broker_pid, stack.redis_pid]
    finally:
        stack.stop()
    assert not any(_pid_alive(pid) for pid in pids)
    stack.stop()  # idempotent


def test_start_reports_the_server_log_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(tmp_path / "clash", broker_port=port)
        with pytest.raises(StackError, match="(?i)in use"):
            stack.start(timeout=5)
    assert not _pid_alive(stack.broker_pid) and stack.redis_pid is None


def test_stack_up_status_down_round_trip(tmp_path):
    stack_file = tmp_path / ".streamrec" / "stack.json"
    settings = Settings(partitions=2)
    pids: list[int] = []
    try:
        info = stack_up(stack_file, settings)
        pids = [info["broker_pid"], info["redis_pid"]]
        assert info["already_running"] is False
        assert json.loads(stack_file.read_text())["broker"] == info["broker"]

        # A second `stack up` finds it and starts nothing.
        again = stack_up(stack_file, settings)
        assert again["already_running"] is True
        assert [again["broker_pid"], again["redis_pid"]] == pids

        status = stack_status(stack_file)
        assert status["running"] and status["broker_alive"] and status["redis_alive"]
        assert status["broker"] == info["broker"] and status["redis_url"] == info["redis_url"]

        # A worker started later finds the stack through the file.
        found = Settings.from_env({STACK_FILE_ENV: str(stack_file)})
        assert (found.broker, found.redis_url) == (info["broker"], info["redis_url"])
        admin = KafkaAdminClient(bootstrap_servers=found.bootstrap_servers)
        try:
            assert set(admin.list_topics()) >= {name for name, _, _ in topic_specs(settings)}
        finally:
            admin.close()
        assert redis.Redis.from_url(found.redis_url).ping()

        assert stack_down(stack_file) is True
        assert not stack_file.exists()
        assert not any(_pid_alive(pid) for pid in pids)
        assert stack_status(stack_file)["running"] is False
        assert stack_down(stack_file) is False
    finally:
        for pid in pids:  # detached servers outlive us: never leave them behind
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def _state(pid: int) -> str:
    """A process's state letter (Z: a zombie, as good as dead); '' if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return ""


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc (Linux)")
def test_a_worker_dies_with_the_process_that_started_it(tmp_path):
    """A replay or demo killed by SIGKILL must not leave its workers running."""
    import subprocess
    import sys

    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import pathlib, time\n"
         "from stream.harness import start_worker\n"
         "from stream.settings import Settings\n"
         f"child = start_worker(Settings(), pathlib.Path({str(tmp_path / 'child.log')!r}),\n"
         "                     argv=['-c', 'import time; time.sleep(120)'])\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _state(child) not in ("", "Z")  # running while its parent runs
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _state(child) not in ("", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(child) in ("", "Z"), "the worker outlived the process that started it"
    if _state(child):
        os.kill(child, signal.SIGKILL)  # (a zombie ignores it; nothing to clean up otherwise)
