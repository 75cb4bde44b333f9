"""Two servers on one PostgreSQL session store: a conversation goes on wherever the client lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

from tests.bridges.instances import resume_on_another_server
from tests.bridges.test_websocket import open_client  # noqa: F401 - a fixture
from tests.pg_sessions import empty_pool, sessions_url


async def test_a_conversation_started_on_one_server_finishes_on_another(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    url = sessions_url()
    async with empty_pool():
        pass  # no session left by another test
    shared = {"TECHASSIST_STORE": url, "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode()}
    await resume_on_another_server(tmp_path, open_client, **shared)
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM session_leases")
        assert await cur.fetchone() == (0,)  # every lease was released with its save
