"""Websocket takeover between two real ``techassist serve`` processes on one Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.bridges.instances import one_of_two_at_once_stays, take_over_on_another_server
from tests.bridges.server import Server, running
from tests.redis_server import delete_prefix, new_prefix, redis_url

# Two real server processes each: a multi-instance scenario, run by `make test-scale`.
pytestmark = pytest.mark.scale


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two servers, each with its own data directory, on one Redis prefix and one key."""
    url, prefix = redis_url(), new_prefix()
    env = {
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
    }
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    try:
        with running(tmp_path / "one", **env) as one, running(tmp_path / "two", **env) as two:
            yield one, two
    finally:
        delete_prefix(url, prefix)


async def test_a_connection_on_another_instance_takes_the_session_over(
    instances: tuple[Server, Server],
) -> None:
    await take_over_on_another_server(*instances)


async def test_of_two_connections_opened_at_once_on_two_instances_exactly_one_stays(
    instances: tuple[Server, Server],
) -> None:
    await one_of_two_at_once_stays(*instances)
