"""First contact: help that reads as text, and one line naming the fix for every failure a user can cause."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from stream import cli
from stream.faustapp import retrying
from stream.settings import Settings
from stream.stack import free_port

ROOT = Path(__file__).resolve().parents[1]


def streamrec(*args: str, tmp_path: Path, **env: str) -> tuple[int, str, float]:
    """Run the CLI as a user would, from a folder with no stack file; (exit status, stderr + stdout, seconds)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "stream.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**clean, "PYTHONPATH": str(ROOT), **env})
    return done.returncode, done.stderr + done.stdout, time.monotonic() - start


def test_help_reads_as_text_and_names_the_settings(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and "STREAMREC_" in top and "stack up" in top
    for command in ("worker", "trainer", "topics", "forget"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert "STREAMREC_BROKER" in text and "stack file" in text, command
    with pytest.raises(SystemExit):
        cli.main(["stack", "--help"])
    text = capsys.readouterr().out
    assert all(f"{action}:" in text for action in ("up", "down", "status"))
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in ("simulated users", "events per second"))


@pytest.mark.parametrize("spelling", ["warning", "WARN", "critical", "debug"])
def test_log_levels_take_the_usual_spellings(spelling):
    args = cli._parser().parse_args(["worker", "--loglevel", spelling])
    assert cli.LOG_LEVELS[args.loglevel] in ("warn", "crit", "debug")


def test_settings_lists_every_variable(capsys):
    assert cli.main(["settings"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in Settings().env())


def test_forget_of_an_impossible_id_says_why_in_one_line(tmp_path):
    code, out, _ = streamrec("forget", "", tmp_path=tmp_path)
    assert code == 1 and out.strip() == ("streamrec forget: '' cannot be a user id: user_id is empty; "
                                         "give the id the user's events carry")


@pytest.mark.parametrize("command", ["worker", "trainer", "topics"])
def test_no_broker_is_one_line_naming_the_fix(tmp_path, command):
    port = free_port()
    code, out, seconds = streamrec(command, tmp_path=tmp_path, STREAMREC_BROKER=f"kafka://127.0.0.1:{port}")
    assert code == 1 and seconds < 30
    assert out.strip().splitlines() == [f"streamrec {command}: no Kafka broker at 127.0.0.1:{port} (connection "
                                        "refused): start a local one with `streamrec stack up`, or set "
                                        "STREAMREC_BROKER"]


@pytest.mark.integration
def test_a_port_that_is_not_kafka_or_not_redis_is_named(stack, tmp_path):
    redis_address = stack.redis_url.split("://")[1].split("/")[0]
    code, out, seconds = streamrec("worker", tmp_path=tmp_path, STREAMREC_BROKER=f"kafka://{redis_address}")
    assert code == 1 and seconds < 40 and len(out.strip().splitlines()) == 1
    assert "is listening but does not answer as a Kafka broker" in out
    code, out, _ = streamrec("worker", tmp_path=tmp_path, STREAMREC_BROKER=stack.broker,
                             STREAMREC_REDIS_URL=f"redis://{stack.bootstrap_servers}/0")
    assert code == 1 and "does not answer as Redis" in out and len(out.strip().splitlines()) == 1
    port = free_port()
    code, out, _ = streamrec("worker", tmp_path=tmp_path, STREAMREC_BROKER=stack.broker,
                             STREAMREC_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert code == 1 and f"no Redis at redis://127.0.0.1:{port}/0" in out and "STREAMREC_REDIS_URL" in out


@pytest.mark.parametrize("args, says", [
    (["replay", "--movielens", "/no/such/folder"], "holds no MovieLens ratings and movies files"),
    (["replay", "--movielens", ".", "--systems", "nope"], "unknown systems ['nope']"),
    (["replay", "--movielens", ".", "--trainer"], "--trainer goes with --via-kafka"),
    (["replay", "--movielens", ".", "--workers", "4"], "--workers goes with --via-kafka"),
])
def test_replay_errors_are_one_line(tmp_path, args, says):
    code, out, _ = streamrec(*args, tmp_path=tmp_path)
    assert code in (1, 2) and says in out and len(out.strip().splitlines()) == 1


def test_the_retry_loop_names_the_dependency_and_its_address(caplog):
    settings = Settings(redis_url="redis://10.1.2.3:6379/0")
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise redis.ConnectionError("Error 111 connecting")
        return "done"

    with caplog.at_level(logging.WARNING, logger="streamrec"):
        assert asyncio.run(retrying(settings, flaky)) == "done"
    assert "Redis at redis://10.1.2.3:6379/0 unavailable (Error 111 connecting)" in caplog.text
