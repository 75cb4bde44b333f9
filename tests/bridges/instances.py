"""A conversation that moves between two real servers sharing one session store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bridges.websocket import TAKEN_OVER
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, Legacy


async def resume_on_another_server(tmp_path: Path, open_client: Any, **shared: str) -> None:
    """Half an installation on one server, the rest on another with its own data directory.

    ``shared`` is the environment both servers get (the store and its secret key):
    nothing else is shared, so the second server can only go on from the store.
    """
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
    with running(tmp_path / "two", **shared) as two:
        again, first = await open_client(two, "CD5678")
        assert "Welcome back, Carlos Diaz" in first["message"]
        assert first["data_needed"] == "customer_online"
        values = (await again.say("status"))["data"]["values"]
        assert (values["fsan"], values["ssid"]) == ("ALCL5E6F7A8B", "Lab")
        done = await again.say("yes")
        assert "Order ORD-2002 is closed" in done["message"]
    assert not (tmp_path / "two" / "sessions.db").exists()


async def take_over_on_another_server(one: Server, two: Server) -> None:
    """A technician's second connection, on server ``two``, closes the first, on ``one``.

    The first client is told why before it is closed, and the conversation goes
    on over the second connection from where the first left it.
    """
    async with (
        connect(one.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws1,
        connect(two.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws2,
    ):
        first, second = Legacy(ws1), Legacy(ws2)
        hello = await first.ask({"type": "cuid", "data": "AB1234"})
        assert "ORD-1003" in hello["message"]
        assert (await first.say("yes"))["data_needed"] == "fsan"
        resumed = await second.ask({"type": "cuid", "data": "AB1234"})
        assert resumed["data_needed"] == "fsan"  # the session carried over through the store
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


async def one_of_two_at_once_stays(one: Server, two: Server) -> None:
    """Two connections for one technician opened at the same moment, one on each server:
    exactly one is closed as taken over, and the other goes on, round after round."""
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
