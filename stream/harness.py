"""Processes and readiness around a stack: what the demo, the replay via Kafka, the benches and the tests share.

- :func:`start_worker` / :func:`stop_worker`: a ``streamrec worker`` (or
  ``trainer``, or any module) process with given settings in its environment;
- :func:`wait_for`: poll a condition, failing early (with the log's tail) if the
  process it waits on died;
- :func:`wait_for_catalogue`: until the state store holds ``n`` encoded items;
- :func:`produce` and :class:`Collector`: what a client app does, publishing
  JSON records and reading a topic from its beginning.

The servers themselves are :mod:`stream.stack`'s.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from stream.settings import Settings
from stream.store import RedisStore

#: libc, loaded once here: the child must not load a library between fork and exec.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def start_worker(settings: Settings, log_path: Path, loglevel: str = "warn", command: str = "worker",
                 argv: list[str] | None = None) -> subprocess.Popen:
    """A ``streamrec <command>`` process (or ``python <argv>``) with ``settings`` in its environment.

    Its output is appended to ``log_path``; it runs in a session of its own, so a
    signal to the caller's terminal does not reach it twice. On Linux it gets
    SIGTERM when the caller dies, however it dies: a replay or demo killed by a
    signal used to leave its workers running, orphaned, eating the CPU. (Strictly,
    when the calling *thread* ends: start workers from one that lives as long.)
    """
    env = {**os.environ, **settings.env(), "PYTHONUNBUFFERED": "1"}
    argv = argv if argv is not None else ["-m", "stream.cli", command, "-l", loglevel]
    return subprocess.Popen([sys.executable, *argv], env=env, stdout=log_path.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent(os.getpid()) if _LIBC is not None else None)


def _die_with_parent(parent: int) -> Callable[[], None]:
    def set_death_signal() -> None:  # runs in the child, between fork and exec
        assert _LIBC is not None
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal us
            os.kill(os.getpid(), signal.SIGTERM)
    return set_death_signal


def stop_worker(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM (Faust shuts down cleanly and commits), then SIGKILL if it has not exited in ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, worker: subprocess.Popen | None = None,
             log_path: Path | None = None, interval: float = 0.2) -> None:
    """Poll ``condition`` until it holds; raise if ``timeout`` passes or ``worker`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if worker is not None and worker.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"the worker exited ({worker.returncode}) while waiting for {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_catalogue(settings: Settings, n: int, timeout: float, worker: subprocess.Popen | None = None,
                       log_path: Path | None = None, progress: Callable[[int], None] | None = None) -> None:
    """Wait until the state store holds ``n`` encoded items; ``progress(count)`` is told each poll."""
    store = RedisStore(settings.redis_url, settings.redis_prefix)

    def encoded() -> bool:
        count = store.catalogue_size()
        if progress is not None:
            progress(count)
        return count >= n

    try:
        wait_for(encoded, timeout, "the catalogue to be encoded", worker, log_path)
    finally:
        store.close()


def produce(bootstrap: str, topic: str, records: Iterable[dict | bytes],
            key: Callable[[dict], str] = lambda r: r["user_id"], **config: Any) -> None:
    """Publish dicts as JSON (bytes as they are, keyed ``bad``), keyed by ``key(record)``, and flush.

    ``config`` goes to kafka-python's producer (``max_request_size=...`` for huge records).
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, **config)
    try:
        for record in records:
            value = record if isinstance(record, bytes) else orjson.dumps(record)
            k = b"bad" if isinstance(record, bytes) else key(record).encode()
            producer.send(topic, key=k, value=value)
        producer.flush()
    finally:
        producer.close()


class Collector:
    """Reads ``topic`` from its beginning in a background thread, as a client app would.

    ``records`` holds the decoded JSON values (None for a tombstone), ``keys`` the
    message keys and ``received_at`` when each arrived (``time.time()``).
    ``on_record(value)``, if given, is called for each record on the reader thread.
    """

    def __init__(self, bootstrap: str, topic: str, *, fetch_max_wait_ms: int = 10,
                 on_record: Callable[[Any], None] | None = None):
        from kafka import KafkaConsumer

        self.records: list[Any] = []
        self.keys: list[bytes | None] = []
        self.received_at: list[float] = []
        self._on_record = on_record
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                       group_id=None, consumer_timeout_ms=100, fetch_max_wait_ms=fetch_max_wait_ms)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer:
                value = None if message.value is None else orjson.loads(message.value)
                self.received_at.append(time.time())
                self.keys.append(message.key)
                self.records.append(value)
                if self._on_record is not None:
                    self._on_record(value)

    def wait(self, n: int, timeout: float = 60.0) -> list[Any]:
        """Block until at least ``n`` records arrived; raise ``TimeoutError`` otherwise."""
        wait_for(lambda: len(self.records) >= n, timeout, f"{n} records (have {len(self.records)})",
                 interval=0.05)
        return self.records

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()
