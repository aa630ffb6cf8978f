"""Before a command leans on Kafka or Redis: are they there, and are they what they claim to be?

A worker started with no broker used to die with a traceback, and one
pointed at a port that is not Kafka hung at "Producer: Starting". Each check
here answers within seconds with one line that names what failed, where, and
the fix (:class:`Unreachable`); the CLI prints it and exits non-zero. A
dependency still starting (containers coming up together) gets ``wait_s`` to
appear before that.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time

from stream.settings import Settings
from stream.topics import client_timeouts

#: How to point streamrec somewhere else, or get servers to point it at.
FIX = "start a local one with `streamrec stack up`, or set {variable}"


class Unreachable(RuntimeError):
    """A dependency is missing or is not what it was said to be; the message says how to fix it."""


def check_broker(settings: Settings, wait_s: float = 5.0) -> None:
    """Raise :class:`Unreachable` unless a Kafka broker answers at ``settings.broker``."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + wait_s
    fix = FIX.format(variable="STREAMREC_BROKER")
    while True:
        listening = _listening(settings.bootstrap_servers)
        if listening:
            try:
                with _quiet("kafka"):  # its warnings about the failed handshake would bury the one line
                    KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="streamrec-preflight",
                                     **client_timeouts(KafkaAdminClient, 3000)).close()
                return
            except KafkaError:
                if time.monotonic() >= deadline:
                    raise Unreachable(f"{settings.bootstrap_servers} is listening but does not answer as a Kafka "
                                      "broker: point STREAMREC_BROKER at your Kafka, or start a local one with "
                                      "`streamrec stack up`") from None
        elif time.monotonic() >= deadline:
            raise Unreachable(f"no Kafka broker at {settings.bootstrap_servers} (connection refused): {fix}")
        time.sleep(0.5)


def check_redis(settings: Settings, wait_s: float = 5.0) -> None:
    """Raise :class:`Unreachable` unless Redis answers PING at ``settings.redis_url``."""
    import redis

    deadline = time.monotonic() + wait_s
    while True:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
            return
        except redis.ConnectionError as exc:
            if time.monotonic() >= deadline:
                raise Unreachable(f"no Redis at {settings.redis_url} ({_short(exc)}): "
                                  + FIX.format(variable="STREAMREC_REDIS_URL")) from None
        except redis.RedisError as exc:
            if time.monotonic() >= deadline:
                raise Unreachable(f"{settings.redis_url} does not answer as Redis ({_short(exc)}): point "
                                  "STREAMREC_REDIS_URL at your Redis") from None
        finally:
            client.close()
        time.sleep(0.5)


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _listening(bootstrap_servers: str) -> bool:
    """Whether any of the ``host:port`` addresses accepts a TCP connection."""
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                return True
        except (OSError, ValueError):
            continue
    return False


def _short(exc: Exception) -> str:
    text = str(exc).strip().rstrip(".")
    return text[:120] or type(exc).__name__
