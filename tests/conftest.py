"""Shared fixtures: one local stack per test session, isolated settings per test.

Isolation comes from names, not from restarts: each test gets its own topics,
consumer group (``app_id``) and redis key prefix on the shared servers, so
tests never see each other's data and need no cleanup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stream.settings import Settings
from stream.stack import LocalStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """A started :class:`LocalStack` (Tansu + redis-server), stopped at the end of the session."""
    local = LocalStack(tmp_path_factory.mktemp("stack")).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
def make_settings(stack: LocalStack, tmp_path: Path) -> Callable[..., Settings]:
    """Factory: ``make_settings(**overrides) -> Settings``, isolated as :meth:`LocalStack.isolated_settings` says."""
    return lambda **overrides: stack.isolated_settings(tmp_path, **overrides)


@pytest.fixture
def redis_client(stack: LocalStack):
    """A ``redis.Redis`` (bytes replies) for the session stack's redis-server."""
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    try:
        yield client
    finally:
        client.close()
