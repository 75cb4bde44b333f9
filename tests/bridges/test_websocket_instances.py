"""Websocket takeover between two real ``techassist serve`` processes on one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from websockets.asyncio.client import connect

from bridges.websocket import TAKEN_OVER
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, Legacy
from tests.redis_server import delete_prefix, new_prefix, redis_url


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
    one, two = instances
    async with (
        connect(one.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws1,
        connect(two.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws2,
    ):
        first, second = Legacy(ws1), Legacy(ws2)
        hello = await first.ask({"type": "cuid", "data": "AB1234"})
        assert "ORD-1003" in hello["message"]
        assert (await first.say("yes"))["data_needed"] == "fsan"
        resumed = await second.ask({"type": "cuid", "data": "AB1234"})
        assert resumed["data_needed"] == "fsan"  # the session carried over through Redis
        notice = await first.recv()
        assert notice == {
            "type": "display",
            "message": "This session was opened from another connection, so this one is closing.",
        }
        assert await first.closed_with() == 1000
        assert (await second.say("ALCL90ABCDEF"))["data_needed"] == "model"
        assert (await second.say("G-240W-F"))["data_needed"] == "ethernet_port"


#: Rounds of two connections opened at once: each has a chance of claims crossing on the way.
ROUNDS = 40


async def test_of_two_connections_opened_at_once_on_two_instances_exactly_one_stays(
    instances: tuple[Server, Server],
) -> None:
    one, two = instances
    for _ in range(ROUNDS):
        async with (
            connect(one.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws1,
            connect(two.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws2,
        ):
            clients = Legacy(ws1), Legacy(ws2)
            await asyncio.gather(*(c.ask({"type": "cuid", "data": "AB1234"}) for c in clients))
            frames = [asyncio.create_task(client.recv()) for client in clients]
            done, _ = await asyncio.wait(frames, return_when=asyncio.FIRST_COMPLETED)
            # Only the older connection hears anything: that it was taken over.
            (closed,) = [n for n, frame in enumerate(frames) if frame in done]
            assert frames[closed].result() == {"type": "display", "message": TAKEN_OVER}
            assert await clients[closed].closed_with() == 1000
            kept = clients[1 - closed]
            await kept.send({"type": "message", "data": "status"})
            status = await frames[1 - closed]
            assert status["type"] == "input" and "Alice Brown" in status["message"], status
