"""The Redis server tests use: 127.0.0.1:6379, or ``TECHASSIST_TEST_REDIS_URL``.

Tests that need it call ``redis_url()``: without a reachable server they skip
with the reason, except under ``CI=true``, where a missing server is a failure.
Each test works under its own key prefix (``new_prefix``) and deletes it after;
nothing here flushes or restarts the shared server.
"""

from __future__ import annotations

import os
import uuid
from functools import cache

import pytest
import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@cache
def _reachable(url: str) -> str | None:
    """``None`` if a PING to ``url`` answers within a second, else why not."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1) as client:
            client.ping()
    except redis.RedisError as exc:
        return f"no Redis server at {url} ({exc}); set TECHASSIST_TEST_REDIS_URL"
    return None


def redis_url() -> str:
    """The test server's URL; skips the test (fails it under CI=true) if it is not there."""
    url = os.environ.get("TECHASSIST_TEST_REDIS_URL", DEFAULT_URL)
    problem = _reachable(url)
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return url


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"techassist-test:{uuid.uuid4().hex[:12]}:"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (never a FLUSH: the server is shared)."""
    with redis.Redis.from_url(url) as client:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)
