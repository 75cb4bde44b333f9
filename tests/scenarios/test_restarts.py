"""The session store's server restarted mid-run, under two real servers.

Each test starts its own backend (``tests/own_servers.py``), never the shared
one, and two ``techassist serve`` processes on it: Redis for the sessions (work
orders in the shared SQLite file), or one PostgreSQL database for both. A
technician is halfway through an installation when the backend goes away,
between two turns or in the middle of one: the turn answers that the service
is briefly unavailable, and ``/readyz`` says 503 and names the store. Once the
backend is back (same data: Redis from its append-only file), ``/readyz`` says
200 again, the technician sends the message again and the conversation goes on
from where it was, on either server, to the order closed. Neither server is
restarted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.fernet import Fernet

from orchestrator_core.orchestrator import UNAVAILABLE
from tests.bot.live import techassist
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import open_client  # noqa: F401 - a fixture
from tests.own_servers import own_postgres, own_redis

pytestmark = pytest.mark.scale

#: Seconds ``/readyz`` has to come back to 200 once the backend is up again.
RECOVERY = 30.0
#: Seconds a lease lasts: one left by a turn that died with the store blocks a resend this long.
LOCK_LIFETIME = "3"
#: Each simulated network call takes this long, so the backend can go away during a turn.
SLOW_TOOLS_MS = "700"


@dataclass
class Backend:
    """The environment that puts the servers on a backend of the test's own, and its switch.

    ``down`` stops the server cleanly where it can, ``crash`` at once; ``count`` runs a
    ``SELECT count(*)`` on the work orders (the SQLite file beside Redis, or PostgreSQL).
    """

    name: str
    env: dict[str, str]
    down: Callable[[], None]
    crash: Callable[[], None]
    up: Callable[[], None]
    count: Callable[[str], int]


@pytest.fixture(params=["redis", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    shared = {
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
        "TECHASSIST_LOCK_LIFETIME": LOCK_LIFETIME,
    }
    if request.param == "redis":

        def in_sqlite(sql: str) -> int:
            with closing(sqlite3.connect(tmp_path / "workorders.db")) as db:
                return int(db.execute(sql).fetchone()[0])

        with own_redis() as redis:
            env = {"TECHASSIST_STORE": redis.url, **shared}
            yield Backend("Redis", env, redis.kill, redis.kill, redis.start, in_sqlite)
        return
    with own_postgres() as postgres:
        url = postgres.create_database("techassist")
        upgraded = techassist(tmp_path, "db", "upgrade", TECHASSIST_DATABASE_URL=url)
        assert upgraded.returncode == 0, upgraded.stderr

        def in_postgres(sql: str) -> int:
            with psycopg.connect(url) as conn:
                row = conn.execute(sql.encode()).fetchone()
                assert row is not None
                return int(row[0])

        env = {"TECHASSIST_STORE": url, "TECHASSIST_DATABASE_URL": url, **shared}
        yield Backend(
            "PostgreSQL",
            env,
            postgres.stop,
            lambda: postgres.stop("immediate"),
            postgres.start,
            in_postgres,
        )


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    """``GET /readyz``: its status and body."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{server.http}/readyz", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def ready_again(server: Server) -> dict[str, Any]:
    """Wait until ``/readyz`` says 200 (the pools reconnect on their own); its body."""
    loop = asyncio.get_running_loop()
    end = loop.time() + RECOVERY
    while True:
        status, body = await asyncio.to_thread(readyz, server)
        if status == 200:
            return body
        assert loop.time() < end, f"/readyz still says {status}: {body}"
        await asyncio.sleep(0.2)


@contextmanager
def two_servers(root: Path, **env: str) -> Iterator[tuple[Server, Server]]:
    """Two servers on ``env``'s backends, with one data directory (and work-order file)."""
    with ExitStack() as stack:
        one = stack.enter_context(running(root, **env))
        two = stack.enter_context(running(root, **env))
        yield one, two


async def outage(servers: tuple[Server, Server], backend: Backend) -> None:
    """While the backend is down, both servers say they are not ready, naming the store."""
    for server in servers:
        status, body = await asyncio.to_thread(readyz, server)
        assert status == 503 and not body["ready"], body
        assert backend.name in body["store"], body


async def recovery(servers: tuple[Server, Server], backend: Backend) -> None:
    """The backend comes back; both servers say they are ready, without a restart."""
    backend.up()
    for server in servers:
        body = await ready_again(server)
        assert body["store"] == "ok" and body["database"] == "ok", body


async def halfway(server: Server, connect: Any) -> Any:
    """Carlos starts ORD-2002 on ``server`` and is asked for the ONT; his client."""
    client, _ = await connect(server, "CD5678")
    await client.say("no")
    asked = await client.say("ORD-2002")
    assert asked["data_needed"] == "fsan", asked
    return client


async def finish_elsewhere(server: Server, connect: Any) -> None:
    """Carlos, on ``server`` now, is welcomed back where he was and closes the order."""
    client, welcome = await connect(server, "CD5678")
    assert welcome is not None and "Welcome back, Carlos Diaz" in welcome["message"]
    assert welcome["data_needed"] == "customer_online", welcome
    values = (await client.say("status"))["data"]["values"]
    assert (values["fsan"], values["ethernet_port"], values["ssid"]) == ("ALCL5E6F7A8B", 3, "Lab")
    done = await client.say("yes")
    assert "Order ORD-2002 is closed" in done["message"], done


def still_up(*servers: Server) -> None:
    """Neither server died, nor logged a traceback through the outage."""
    for server in servers:
        output = "".join(server.output)
        assert server.process.poll() is None, output
        assert "Traceback" not in output, output


ONT = "fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3"
#: The ONT activations that succeeded, from the tool audit.
ACTIVATED = "SELECT count(*) FROM audit WHERE tool = 'activate_ont' AND ok"


async def test_the_store_goes_away_between_two_turns_and_comes_back(
    tmp_path: Path,
    backend: Backend,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    with two_servers(tmp_path, **backend.env) as servers:
        client = await halfway(servers[0], open_client)
        assert (await client.say(ONT))["data_needed"] == "ssid"
        backend.down()
        refused = await client.say("ssid=Lab")
        assert refused == {"type": "input", "message": UNAVAILABLE}, refused
        await outage(servers, backend)
        await recovery(servers, backend)
        # The same connection: the message is sent again and the conversation goes on.
        assert (await client.say("ssid=Lab"))["data_needed"] == "wifi_password"
        assert (await client.say("wifi_password=s3cret-passw0rd"))["data_needed"] == (
            "customer_online"
        )
        await finish_elsewhere(servers[1], open_client)
        still_up(*servers)
        assert backend.count(ACTIVATED) == 1


async def test_the_store_goes_away_in_the_middle_of_a_turn_and_comes_back(
    tmp_path: Path,
    backend: Backend,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    env = {**backend.env, "TECHASSIST_SIM_LATENCY_MS": SLOW_TOOLS_MS}
    with two_servers(tmp_path, **env) as servers:
        client = await halfway(servers[0], open_client)
        # The ONT is being activated when the backend crashes.
        await client.send({"type": "message", "data": ONT})
        await asyncio.sleep(int(SLOW_TOOLS_MS) / 2000)
        backend.crash()
        refused = await client.recv()
        assert refused["message"] == UNAVAILABLE, refused
        await outage(servers, backend)
        await recovery(servers, backend)
        again = await client.say(ONT)
        assert again["data_needed"] == "ssid", again
        assert "already installed" not in again["message"], again
        assert (await client.say("ssid=Lab"))["data_needed"] == "wifi_password"
        assert (await client.say("wifi_password=s3cret-passw0rd"))["data_needed"] == (
            "customer_online"
        )
        await finish_elsewhere(servers[1], open_client)
        still_up(*servers)
        # The activation that ran before the crash is not run again: either it was in
        # the audit (answered from there) or it had not finished (and runs once now).
        assert backend.count(ACTIVATED) == 1
