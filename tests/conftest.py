"""Shared fixtures: one local stack per test session, isolated settings per test.

Isolation comes from names, not from restarts: each test gets its own topics,
consumer group (``app_id``) and redis key prefix on the shared servers, so
tests never see each other's data and need no cleanup.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.settings import Settings
from stream.stack import LocalStack
from stream.topics import ensure_topics, topic_specs


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """A started :class:`LocalStack` (Tansu + redis-server), stopped at the end of the session."""
    local = LocalStack(tmp_path_factory.mktemp("stack")).start()
    try:
        yield local
    finally:
        local.stop()


def isolated_settings(stack: LocalStack, data_root: Path, **overrides) -> Settings:
    """Settings pointing at ``stack`` with unique topic names, ``app_id`` and ``redis_prefix``.

    ``data_dir`` lies under ``data_root``, ``partitions=2`` unless overridden, and
    the topics are already created. Overrides win over all of these.
    """
    suffix = uuid.uuid4().hex[:8]
    base = Settings()
    values = {
        "broker": stack.broker,
        "redis_url": stack.redis_url,
        "app_id": f"streamrec-test-{suffix}",
        "data_dir": str(data_root / f"worker-{suffix}"),
        "redis_prefix": f"t{suffix}:",
        "partitions": 2,
    }
    # Every *_topic field, so topics added to Settings later are isolated too.
    for field in dataclasses.fields(base):
        if field.name.endswith("_topic"):
            values[field.name] = f"{getattr(base, field.name)}-{suffix}"
    settings = dataclasses.replace(base, **{**values, **overrides})
    ensure_topics(settings.bootstrap_servers, topic_specs(settings))
    return settings


@pytest.fixture
def make_settings(stack: LocalStack, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: ``make_settings(**overrides) -> Settings``, isolated as :func:`isolated_settings` says."""
    return lambda **overrides: isolated_settings(stack, tmp_path, **overrides)


@pytest.fixture
def redis_client(stack: LocalStack):
    """A ``redis.Redis`` (bytes replies) for the session stack's redis-server."""
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        client.close()
