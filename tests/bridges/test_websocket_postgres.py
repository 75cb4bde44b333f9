"""Two servers on one PostgreSQL session store: a conversation goes on wherever the client
lands, and a second connection on one server takes the technician's session over from the
other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from tests.bridges.instances import (
    one_of_two_at_once_stays,
    resume_on_another_server,
    take_over_on_another_server,
)
from tests.bridges.server import running
from tests.bridges.test_websocket import open_client  # noqa: F401 - a fixture
from tests.pg_sessions import empty_pool, sessions_url

# Two real server processes each: a multi-instance scenario, run by `make test-scale`.
pytestmark = pytest.mark.scale


async def shared_store() -> dict[str, str]:
    """The environment both servers get: the emptied test database as their store, one key."""
    async with empty_pool():
        pass  # no session or owner left by another test
    return {
        "TECHASSIST_STORE": sessions_url(),
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
    }


async def test_a_conversation_started_on_one_server_finishes_on_another(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    shared = await shared_store()
    await resume_on_another_server(tmp_path, open_client, **shared)
    async with await psycopg.AsyncConnection.connect(sessions_url()) as conn:
        cur = await conn.execute("SELECT count(*) FROM session_leases")
        assert await cur.fetchone() == (0,)  # every lease was released with its save


async def test_a_connection_on_another_server_takes_the_session_over(tmp_path: Path) -> None:
    shared = await shared_store()
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with running(tmp_path / "one", **shared) as one, running(tmp_path / "two", **shared) as two:
        await take_over_on_another_server(one, two)


async def test_of_two_connections_opened_at_once_on_two_servers_exactly_one_stays(
    tmp_path: Path,
) -> None:
    shared = await shared_store()
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with running(tmp_path / "one", **shared) as one, running(tmp_path / "two", **shared) as two:
        await one_of_two_at_once_stays(one, two)
