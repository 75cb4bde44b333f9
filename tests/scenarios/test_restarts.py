"""The session store's server restarted mid-run, under two real servers.

Each test starts its own backend (``tests/own_servers.py``), never the shared
one, and two ``techassist serve`` processes on it. A technician is halfway
through an installation when the backend goes away: the turn answers that the
service is briefly unavailable, ``/readyz`` says 503 and names the store; once
the backend is back (same data: Redis from its append-only file) ``/readyz``
says 200 again, the technician sends the message again and the conversation
goes on from where it was, on either server, to the order closed. Neither
server is restarted.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from orchestrator_core.orchestrator import SORRY, UNAVAILABLE
from tests.bot.live import techassist
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import open_client  # noqa: F401 - a fixture
from tests.own_servers import own_postgres, own_redis

pytestmark = pytest.mark.scale

#: Seconds ``/readyz`` has to come back to 200 once the backend is up again.
RECOVERY = 30.0
#: A lease outlives a turn that died with the store; short, so a resend need not wait long.
LOCK_LIFETIME = "3"


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    """``GET /readyz``: its status and body."""
    request = urllib.request.Request(f"{server.http}/readyz")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
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


def still_up(*servers: Server) -> None:
    """Neither server died nor logged a traceback through the outage."""
    for server in servers:
        assert server.process.poll() is None, "".join(server.output)
        assert "Traceback" not in "".join(server.output), "".join(server.output)


async def outage_and_recovery(
    servers: tuple[Server, Server],
    connect: Any,
    down: Callable[[], None],
    up: Callable[[], None],
    store: str,
) -> None:
    """Half an installation on the first server; the backend goes down and comes back;
    the technician resends and finishes on the second server."""
    one, two = servers
    client, _ = await connect(one, "CD5678")
    await client.say("no")
    await client.say("ORD-2002")
    asked = await client.say("fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3")
    assert asked["data_needed"] == "ssid", asked
    asked = await client.say("ssid=Lab")
    assert asked["data_needed"] == "wifi_password", asked

    down()
    refused = await client.say("wifi_password=s3cret-passw0rd")
    assert refused["message"] == UNAVAILABLE, refused
    assert SORRY not in refused["message"] and "Traceback" not in json.dumps(refused)
    for server in servers:
        status, body = await asyncio.to_thread(readyz, server)
        assert status == 503 and not body["ready"], body
        assert store in body["store"], body

    up()
    for server in servers:
        body = await ready_again(server)
        assert body["store"] == "ok" and body["database"] == "ok", body
    # The same connection: the message is sent again and the conversation goes on.
    again = await client.say("wifi_password=s3cret-passw0rd")
    assert again["data_needed"] == "customer_online", again

    other, welcome = await connect(two, "CD5678")
    assert welcome is not None and "Welcome back, Carlos Diaz" in welcome["message"]
    assert welcome["data_needed"] == "customer_online", welcome
    values = (await other.say("status"))["data"]["values"]
    assert (values["fsan"], values["ssid"]) == ("ALCL5E6F7A8B", "Lab")
    done = await other.say("yes")
    assert "Order ORD-2002 is closed" in done["message"], done
    still_up(one, two)


async def test_redis_killed_and_restarted_from_its_append_only_file(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    with own_redis() as redis:
        env = {
            "TECHASSIST_STORE": redis.url,
            "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
            "TECHASSIST_LOCK_LIFETIME": LOCK_LIFETIME,
        }
        with two_servers(tmp_path, **env) as servers:
            await outage_and_recovery(servers, open_client, redis.kill, redis.start, "Redis")


async def test_postgres_stopped_and_started_again(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    with own_postgres() as postgres:
        url = postgres.create_database("techassist")
        upgraded = techassist(tmp_path, "db", "upgrade", TECHASSIST_DATABASE_URL=url)
        assert upgraded.returncode == 0, upgraded.stderr
        env = {
            "TECHASSIST_STORE": url,
            "TECHASSIST_DATABASE_URL": url,
            "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
            "TECHASSIST_LOCK_LIFETIME": LOCK_LIFETIME,
        }
        with two_servers(tmp_path, **env) as servers:
            await outage_and_recovery(
                servers, open_client, postgres.stop, postgres.start, "PostgreSQL"
            )
