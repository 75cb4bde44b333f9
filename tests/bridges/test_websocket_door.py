"""Who may open the websocket, against the real server: tokens, origins, one answer for all.

In token mode a client proves who it is at the handshake; without a valid
token it never gets a frame through. In either mode a web page from a foreign
origin is refused, and a CUID that identifies nobody gets one answer, whatever
it looks like.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from bot.app import ws_auth
from bot.settings import Settings
from orchestrator_core.credentials import Credentials, utc_now
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from tests.bot.live import ROOT, environment, techassist
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, Legacy

PRIVATE = ("Alice", "ORD-1003", "Ada Lovelace", "Side gate")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("door")


@pytest.fixture(scope="module")
def guarded(data_dir: Path) -> Iterator[Server]:
    """A server in token mode, on 127.0.0.1."""
    with running(data_dir, TECHASSIST_WS_AUTH="token") as srv:
        yield srv


async def issue(
    data_dir: Path, cuid: str, ttl: timedelta = timedelta(days=1), ago: float = 0
) -> str:
    """A token for ``cuid``, issued ``ago`` seconds in the past, in the server's database."""
    db = SqliteWorkOrders(data_dir / "workorders.db")
    try:
        clock = lambda: utc_now() - timedelta(seconds=ago)  # noqa: E731
        return (await Credentials(db, clock).issue_token(cuid, ttl)).secret
    finally:
        db.close()


async def opened(
    server: Server, *, token: str | None = None, query: str | None = None, origin: str | None = None
) -> ClientConnection:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if origin is not None:
        headers["Origin"] = origin
    url = server.url + (f"?token={query}" if query is not None else "")
    return await connect(
        url, additional_headers=headers, compression=None, open_timeout=TIMEOUT, proxy=None
    )


async def refused(server: Server, **how: Any) -> tuple[int, str]:
    """The HTTP status and text a handshake is refused with."""
    with pytest.raises(InvalidStatus) as caught:
        ws = await opened(server, **how)
        await ws.close()
    response = caught.value.response
    return response.status_code, bytes(response.body or b"").decode()


def session_keys(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "sessions.db") as db:
        return [row[0] for row in db.execute("SELECT key FROM sessions")]


# ---------------------------------------------------------------------- token mode


async def test_without_a_valid_token_the_handshake_is_refused(guarded: Server) -> None:
    status, text = await refused(guarded)
    assert status == 401 and "needs a token" in text
    assert (await refused(guarded, token="tat_" + "x" * 43))[0] == 401
    assert (await refused(guarded, query="tat_" + "x" * 43))[0] == 401
    assert (await refused(guarded, token="x" * 5000))[0] == 401


async def test_a_token_decides_the_technician(guarded: Server, data_dir: Path) -> None:
    ws = await opened(guarded, token=await issue(data_dir, "CD5678"))
    async with ws:
        client = Legacy(ws)
        for frame in (
            {"type": "cuid", "data": "EF9012"},
            {"type": "message", "data": "ef9012"},
            {"type": "cuid", "data": "ZZ9999"},
        ):
            refusal = await client.ask(frame)
            assert refusal["type"] == "input" and refusal["data_needed"] == "cuid"
            assert "token is for CD5678" in refusal["message"]
            assert not any(secret in refusal["message"] for secret in ("Erin", "ORD-"))
        hello = await client.ask({"type": "cuid", "data": "cd5678"})
        assert "Carlos Diaz" in hello["message"]
        other = await client.ask({"type": "cuid", "data": "AB1234"})
        assert "connected as CD5678" in other["message"]
        assert not any(secret in other["message"] for secret in PRIVATE)
    # Nothing was kept under the names the connection was refused.
    assert not [k for k in session_keys(data_dir) if "EF9012" in k or "ZZ9999" in k]


async def test_the_legacy_client_s_query_token_works(guarded: Server, data_dir: Path) -> None:
    ws = await opened(guarded, query=await issue(data_dir, "AB1234"))
    async with ws:
        hello = await Legacy(ws).ask({"type": "cuid", "data": "AB1234"})
        assert "Alice Brown" in hello["message"]


async def test_a_revoked_or_expired_token_is_refused(guarded: Server, data_dir: Path) -> None:
    token = await issue(data_dir, "AB1234")
    ws = await opened(guarded, token=token)
    await ws.close()
    done = techassist(data_dir, "tokens", "revoke", token)
    assert done.returncode == 0, done.stderr
    assert (await refused(guarded, token=token))[0] == 401
    expired = await issue(data_dir, "AB1234", ttl=timedelta(hours=1), ago=3601)
    assert (await refused(guarded, token=expired))[0] == 401
    first, second = await issue(data_dir, "EF9012"), await issue(data_dir, "EF9012")
    done = techassist(data_dir, "tokens", "revoke", "--cuid", "ef9012")
    assert done.returncode == 0 and "Revoked 2 token(s) of EF9012" in done.stdout
    assert (await refused(guarded, token=first))[0] == 401
    assert (await refused(guarded, query=second))[0] == 401


async def test_only_a_holder_of_the_technician_s_token_takes_the_session_over(
    guarded: Server, data_dir: Path
) -> None:
    alice = await issue(data_dir, "AB1234")
    first_ws = await opened(guarded, token=alice)
    async with first_ws:
        first = Legacy(first_ws)
        assert "Alice Brown" in (await first.ask({"type": "cuid", "data": "AB1234"}))["message"]
        assert (await refused(guarded))[0] == 401  # a stranger with no token
        impostor_ws = await opened(guarded, token=await issue(data_dir, "CD5678"))
        async with impostor_ws:
            refusal = await Legacy(impostor_ws).ask({"type": "cuid", "data": "AB1234"})
            assert "token is for CD5678" in refusal["message"]
        status = await first.say("status")  # the technician is still connected, undisturbed
        assert status["type"] == "input" and "another connection" not in status["message"]
        second_ws = await opened(guarded, token=alice)
        async with second_ws:
            hello = await Legacy(second_ws).ask({"type": "cuid", "data": "AB1234"})
            assert "Alice Brown" in hello["message"]
            notice = await first.recv()
            assert "another connection" in notice["message"]
            assert await first.closed_with() == 1000


def test_the_token_never_reaches_the_log_even_at_debug(tmp_path: Path) -> None:
    with running(tmp_path, TECHASSIST_WS_AUTH="token", TECHASSIST_LOG_LEVEL="DEBUG") as srv:
        token = asyncio.run(issue(tmp_path, "AB1234"))

        async def visit() -> None:
            for how in ({"token": token}, {"query": token}):
                async with await opened(srv, **how) as ws:
                    await Legacy(ws).ask({"type": "cuid", "data": "AB1234"})
            await refused(srv, query=token + "x")
            await refused(srv, token=token[:-1])

        asyncio.run(visit())
        deadline = time.monotonic() + TIMEOUT
        while "".join(srv.output).count("WebSocket /start_task") < 4:
            assert time.monotonic() < deadline, "".join(srv.output)
            time.sleep(0.05)
        log = "".join(srv.output)
    assert "DEBUG" in log and "Authorization" not in log.replace("authorization: [redacted]", "")
    assert token not in log and token[4:20] not in log and "?token=" not in log
    assert '"WebSocket /start_task?[redacted]" [accepted]' in log


def test_a_client_without_a_token_is_told_plainly(guarded: Server, data_dir: Path) -> None:
    def client(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args, "--url", guarded.url, "--cuid", "AB1234"],
            input="quit\n",
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(None, **env),
            cwd=ROOT,
        )

    done = client(str(ROOT / "client.py"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "This server needs a token: --token or TECHASSIST_TOKEN." in done.stdout
    done = client("-m", "bot.cli", "client", "--token", "tat_" + "x" * 43)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "refused the token" in done.stdout
    done = client(str(ROOT / "client.py"), "--token", asyncio.run(issue(data_dir, "AB1234")))
    assert done.returncode == 0 and "Alice Brown" in done.stdout, done.stdout + done.stderr
    done = client(
        "-m", "bot.cli", "client", TECHASSIST_TOKEN=asyncio.run(issue(data_dir, "AB1234"))
    )
    assert done.returncode == 0 and "Alice Brown" in done.stdout, done.stdout + done.stderr


# ---------------------------------------------------------------------- every mode


@pytest.fixture(scope="module")
def open_door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the defaults (no tokens on loopback), with one browser origin allowed."""
    data = tmp_path_factory.mktemp("open")
    with running(data, TECHASSIST_WS_ALLOWED_ORIGINS=" https://Dispatch.example.com ,") as srv:
        yield srv


def test_on_loopback_the_default_needs_no_token_and_says_so(open_door: Server) -> None:
    assert "websocket clients need no token (none mode" in "".join(open_door.output)


def test_off_loopback_the_default_is_token_and_none_is_warned_about() -> None:
    assert ws_auth(Settings(_env_file=None, host="0.0.0.0"))[0] == "token"
    assert ws_auth(Settings(_env_file=None, host="::1"))[0] == "none"
    mode, level, line = ws_auth(Settings(_env_file=None, host="10.1.2.3", ws_auth="NONE"))
    assert (mode, level) == ("none", logging.WARNING) and "10.1.2.3" in line
    assert ws_auth(Settings(_env_file=None, ws_auth="token"))[0] == "token"


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1.evil.example", "https://127.0.0.1"]
)
async def test_a_web_page_from_another_origin_is_refused(open_door: Server, origin: str) -> None:
    status, text = await refused(open_door, origin=origin)
    assert status == 403 and "origin" in text


async def test_no_origin_the_server_s_own_and_a_listed_one_are_let_in(open_door: Server) -> None:
    own = open_door.http  # http://127.0.0.1:PORT, the origin of a page the server serves
    for origin in (None, own, "https://dispatch.example.com", "https://dispatch.example.com:443"):
        async with await opened(open_door, origin=origin) as ws:
            hello = await Legacy(ws).ask({"type": "cuid", "data": "EF9012"})
            assert "Erin Fox" in hello["message"], origin


async def test_unknown_and_malformed_cuids_get_byte_identical_answers(open_door: Server) -> None:
    answers = []
    async with await opened(open_door) as ws:
        for guess in ("ZZ0000", "zz0001", "!!", "A" * 40, "AB-1234", "ＡＢ１２３４", "1"):
            await ws.send(json.dumps({"type": "cuid", "data": guess}))
            answers.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert len(set(answers)) == 1, answers
    assert json.loads(answers[0])["data_needed"] == "cuid"
