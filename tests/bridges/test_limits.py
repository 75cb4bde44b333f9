"""Every limit, hit through the real server as a client (or an attacker) would hit it.

Each test starts ``techassist serve`` with the limit set low, so that it is reached in
a few frames or connections, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.bridges.server import Server, running

TIMEOUT = 15


def rss_kib(server: Server) -> int:
    """The server process's resident set size."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1))


async def opened(server: Server, **options: Any) -> ClientConnection:
    return await connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None, **options)


@asynccontextmanager
async def client(server: Server, **options: Any) -> AsyncIterator[ClientConnection]:
    ws = await opened(server, **options)
    try:
        yield ws
    finally:
        await ws.close()


async def ask(ws: ClientConnection, kind: str, data: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": kind, "data": data}))
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return frame


async def refused_status(server: Server, **options: Any) -> int:
    """The HTTP status of a refused websocket handshake (fails if it is accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        await opened(server, **options)
    return refused.value.response.status_code


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        while True:  # frames before the close are read and dropped
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return ws.close_code


# --- connections ----------------------------------------------------------------------


async def flood(server: Server, count: int) -> tuple[list[ClientConnection], list[int], int]:
    """Open ``count`` idle connections at once; the accepted ones, the refusals' statuses,
    and the server's peak RSS meanwhile."""
    peak = rss_kib(server)
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(server))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(opened(server) for _ in range(count)), return_exceptions=True)
    await asyncio.sleep(0.2)  # the server has settled every connection
    done.set()
    await watcher
    accepted = [r for r in results if isinstance(r, ClientConnection)]
    statuses = [r.response.status_code for r in results if isinstance(r, InvalidStatus)]
    others = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, InvalidStatus)
    ]
    assert not others, others[:3]
    return accepted, statuses, peak


async def test_connections_over_the_cap_get_503_and_memory_stays_bounded(tmp_path: Path) -> None:
    cap, extra = 300, 60
    with running(
        tmp_path, TECHASSIST_MAX_CONNECTIONS=str(cap), TECHASSIST_MAX_CONNECTIONS_PER_IP="1000"
    ) as server:
        async with client(server) as ws:  # warm-up: the first connection's one-time costs
            await ask(ws, "cuid", "AB1234")
        await asyncio.sleep(0.2)
        baseline = rss_kib(server)
        peaks = []
        for _ in range(2):
            accepted, statuses, peak = await flood(server, cap + extra)
            try:
                assert len(accepted) == cap
                assert statuses == [503] * extra
            finally:
                await asyncio.gather(*(ws.close() for ws in accepted))
            peaks.append(peak)
            await asyncio.sleep(0.3)
            async with client(server) as ws:  # room again once the flood is gone
                assert "Alice" in (await ask(ws, "cuid", "AB1234"))["message"]
    print(f"RSS KiB: baseline {baseline}, flood peaks {peaks}")
    assert peaks[0] - baseline <= cap * 40, (baseline, peaks)
    assert peaks[1] - peaks[0] < 5 * 1024, (baseline, peaks)


async def test_connections_from_one_address_over_its_share_get_503(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_MAX_CONNECTIONS_PER_IP="3") as server:
        async with AsyncExitStack() as stack:
            held = [await stack.enter_async_context(client(server)) for _ in range(3)]
            assert await refused_status(server) == 503
            # A forged X-Forwarded-For from an address that is no configured proxy changes nothing.
            forged = {"additional_headers": {"X-Forwarded-For": "203.0.113.7"}}
            assert await refused_status(server, **forged) == 503
            await held[0].close()
            await asyncio.sleep(0.2)
            async with client(server) as ws:
                assert "Alice" in (await ask(ws, "cuid", "AB1234"))["message"]


async def test_a_configured_proxy_is_believed_for_the_client_address(tmp_path: Path) -> None:
    env = {"TECHASSIST_MAX_CONNECTIONS_PER_IP": "1", "TECHASSIST_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with running(tmp_path, **env) as server:
        first = {"additional_headers": {"X-Forwarded-For": "203.0.113.7"}}
        second = {"additional_headers": {"X-Forwarded-For": "203.0.113.8"}}
        async with client(server, **first), client(server, **second):
            assert await refused_status(server, **first) == 503


async def test_a_half_sent_handshake_is_closed_after_the_handshake_timeout(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_HANDSHAKE_TIMEOUT="1") as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        silent = await asyncio.open_connection("127.0.0.1", port)
        half = await asyncio.open_connection("127.0.0.1", port)
        half[1].write(b"GET /start_task HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        for reader, writer in (silent, half):
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # to the server's close
            assert answer.startswith(b"HTTP/1.1 408 ")
            writer.close()
        async with client(server) as ws:  # a whole handshake is not affected
            await asyncio.sleep(1.5)
            assert "Alice" in (await ask(ws, "cuid", "AB1234"))["message"]


# --- frames ---------------------------------------------------------------------------


async def test_an_idle_connection_is_told_and_closed_normally(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_IDLE_TIMEOUT="1") as server:
        async with client(server) as ws:
            assert "Alice" in (await ask(ws, "cuid", "AB1234"))["message"]
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert frame["type"] == "display"
            assert "No message for 1 second," in frame["message"]
            assert "Your session is kept" in frame["message"]
            assert await closed_with(ws) == 1000
        async with client(server) as ws:  # the session is where it was
            assert "Welcome back" in (await ask(ws, "cuid", "AB1234"))["message"]


async def test_messages_over_the_rate_are_not_read_and_a_flood_is_closed(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_MESSAGES_PER_MINUTE="4") as server:
        async with client(server) as ws:
            await ask(ws, "cuid", "AB1234")
            for _ in range(3):
                await ask(ws, "message", "status")
            slow = await ask(ws, "message", "quit")  # over the rate: not read, so no goodbye
            assert slow["type"] == "input"
            assert "faster than I can take them (more than 4 a minute)" in slow["message"]
            for _ in range(20):  # a client that keeps sending regardless
                await ws.send(json.dumps({"type": "message", "data": "status"}))
            assert await closed_with(ws) == 1008


# --- identification -------------------------------------------------------------------


async def test_failed_identifications_from_one_address_make_it_wait(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_IDENTIFY_FAILURES_PER_MINUTE="3") as server:
        async with client(server) as ws:
            for guess in ("ZZ0001", "ZZ0002", "ZZ0003"):
                frame = await ask(ws, "cuid", guess)
                assert "Too many failed attempts" not in frame["message"]
        # Another connection from the same address; even a real CUID is not looked at now.
        async with client(server) as ws:
            frame = await ask(ws, "cuid", "AB1234")
            assert frame["type"] == "input"
            assert frame["data_needed"] == "cuid"
            assert "Too many failed attempts to identify from your address" in frame["message"]
            assert "Alice" not in frame["message"]


# --- escalations ----------------------------------------------------------------------


async def test_escalations_per_technician_per_hour_are_capped(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_ESCALATIONS_PER_HOUR="2") as server:
        async with client(server) as ws:
            await ask(ws, "cuid", "EF9012")
            said = []
            for _ in range(3):
                await ask(ws, "message", "help")
                said.append((await ask(ws, "message", "need a ladder"))["message"])
    assert "passed that to a human" in said[1]
    assert "limit of 2 escalations an hour" in said[2]
    assert "call your dispatcher" in said[2]
    with sqlite3.connect(tmp_path / "workorders.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM escalations WHERE cuid = 'EF9012'").fetchone()
    assert count == 2
