"""Two servers on one PostgreSQL session store: a conversation goes on wherever the client lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

from tests.bridges.server import running
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
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with running(tmp_path / "one", **shared) as one:
        client, _ = await open_client(one, "CD5678")
        await client.say("no")
        await client.say("ORD-2002")
        await client.say("fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3")
        await client.say("ssid=Lab")
        pending = await client.say("wifi_password=s3cret-passw0rd")
        assert pending["data_needed"] == "customer_online"
    # Another machine, its own data directory: only PostgreSQL is shared.
    with running(tmp_path / "two", **shared) as two:
        again, first = await open_client(two, "CD5678")
        assert "Welcome back, Carlos Diaz" in first["message"]
        assert first["data_needed"] == "customer_online"
        values = (await again.say("status"))["data"]["values"]
        assert (values["fsan"], values["ssid"]) == ("ALCL5E6F7A8B", "Lab")
        done = await again.say("yes")
        assert "Order ORD-2002 is closed" in done["message"]
    assert not (tmp_path / "two" / "sessions.db").exists()
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM session_leases")
        assert await cur.fetchone() == (0,)  # every lease was released with its save
