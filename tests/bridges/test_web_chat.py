"""The technicians' web chat against the real server: sign-in link, cookie, /ws protocol v2.

Every frame the server sends in these tests is checked against
``docs/protocol.schema.json``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.bot.live import techassist
from tests.bridges.server import Server, running

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "protocol.schema.json").read_text())
SERVER_FRAME = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/server"})
CLIENT_FRAME = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/client"})
TIMEOUT = 20
# Turns are fast here; a typing frame would only come after this long.
QUIET = {"TECHASSIST_WEB_TYPING_AFTER": "60"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running(tmp_path, **QUIET) as srv:
        yield srv


def http(server: Server) -> httpx.Client:
    # trust_env=False: a developer's HTTP(S)_PROXY must not swallow loopback traffic.
    return httpx.Client(base_url=server.http, trust_env=False, timeout=TIMEOUT)


def link_for(server: Server, data_dir: Path, cuid: str = "AB1234") -> str:
    """``techassist tokens link --cuid CUID``, as an operator runs it: the URL it prints."""
    done = techassist(data_dir, "tokens", "link", "--cuid", cuid, TECHASSIST_PUBLIC_URL=server.http)
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"{server.http}/signin?t=tal_")
    assert "15 minutes" in done.stderr
    return url


def sign_in(server: Server, data_dir: Path, cuid: str = "AB1234") -> str:
    """Sign in by link; the cookie's value."""
    token = link_for(server, data_dir, cuid).split("?t=", 1)[1]
    with http(server) as client:
        response = client.post("/api/signin", data={"t": token})
    assert response.status_code == 303, response.text
    cookie = response.cookies.get("techassist_web")
    assert cookie
    return cookie


class Page:
    """A technician's page, as chat.js speaks: frames with ids, one reply frame per turn."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.count = 0
        self.prefix = secrets.token_hex(4)

    async def send(self, frame: dict[str, Any]) -> None:
        CLIENT_FRAME.validate(frame)
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        SERVER_FRAME.validate(frame)
        return frame

    async def hello(self, resume: str | None = None) -> dict[str, Any]:
        await self.send({"type": "hello", "v": 2, "resume": resume})
        welcome = await self.recv()
        assert welcome["type"] == "welcome"
        return welcome

    def next_id(self) -> str:
        self.count += 1
        return f"c-{self.prefix}-{self.count}"  # unique, as chat.js makes them

    async def say(self, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Send text; the very next frame is its reply, acknowledging it."""
        message_id = message_id or self.next_id()
        await self.send({"type": "message", "id": message_id, "text": text})
        return await self.reply_to(message_id)

    async def tap(self, value: str) -> dict[str, Any]:
        message_id = self.next_id()
        await self.send({"type": "action", "id": message_id, "value": value})
        return await self.reply_to(message_id)

    async def reply_to(self, message_id: str) -> dict[str, Any]:
        frame = await self.recv()
        assert frame["type"] == "reply", frame
        assert frame["ack"] == message_id
        return frame


@pytest.fixture
async def open_page() -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def factory(server: Server, cookie: str | None) -> Page:
        headers = {"Cookie": f"techassist_web={cookie}"} if cookie else {}
        ws = await connect(
            server.http.replace("http://", "ws://") + "/ws",
            additional_headers=headers,
            compression=None,
            open_timeout=TIMEOUT,
            proxy=None,
        )
        opened.append(ws)
        return Page(ws)

    try:
        yield factory
    finally:
        for ws in opened:
            await ws.close()


def texts(frame: dict[str, Any]) -> str:
    return "\n".join(r["text"] for r in frame["replies"])


def test_a_signin_link_works_once_and_sets_a_strict_http_only_cookie(
    server: Server, tmp_path: Path
) -> None:
    url = link_for(server, tmp_path)
    token = url.split("?t=", 1)[1]
    with http(server) as client:
        # Opening the link (or a chat app's preview of it) does not use it.
        for _ in range(2):
            page = client.get(url.removeprefix(server.http))
            assert page.status_code == 200
            assert 'action="/api/signin"' in page.text and token in page.text
            assert "techassist_web" not in page.headers.get("set-cookie", "")
        signed = client.post("/api/signin", data={"t": token})
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("techassist_web=tat_")
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain http here; https requests get Secure
        # The chat page opens with the cookie.
        client.cookies.set("techassist_web", signed.cookies["techassist_web"])
        chat = client.get("/")
        assert chat.status_code == 200 and 'id="transcript"' in chat.text
        assert "script-src 'self'" in chat.headers["content-security-policy"]
        client.cookies.clear()
        # The same link again: refused, and no cookie.
        again = client.post("/api/signin", data={"t": token})
        assert again.status_code == 400
        assert "used already" in again.text
        assert "set-cookie" not in again.headers
        # A made-up link and a link of nothing: refused the same way.
        assert client.post("/api/signin", data={"t": "tal_" + "x" * 43}).status_code == 400
        assert client.post("/api/signin", data={}).status_code == 400
        # Another site's form cannot sign this browser in.
        foreign = client.post(
            "/api/signin", data={"t": token}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
    log = "".join(server.output)
    assert token not in log and "tat_" not in log


def test_a_link_for_an_unknown_technician_is_refused_by_the_command(tmp_path: Path) -> None:
    done = techassist(tmp_path, "tokens", "link", "--cuid", "ZZ9999")
    assert done.returncode != 0
    assert "ZZ9999" in done.stderr and "Traceback" not in done.stderr
    assert "signin" not in done.stdout


async def test_without_a_valid_cookie_the_page_and_the_socket_are_refused(
    server: Server, open_page: Any
) -> None:
    with http(server) as client:
        page = client.get("/")
        assert page.status_code == 401
        assert "sign-in link" in page.text
        assert 'id="transcript"' not in page.text
        client.cookies.set("techassist_web", "tat_not-a-real-token")
        assert client.get("/").status_code == 401
    for cookie in (None, "tat_not-a-real-token"):
        with pytest.raises(InvalidStatus) as refused:
            await open_page(server, cookie)
        assert refused.value.response.status_code == 401


async def test_a_whole_installation_over_v2_with_one_frame_per_turn(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    page = await open_page(server, sign_in(server, tmp_path))
    welcome = await page.hello()
    assert welcome["cuid"] == "AB1234" and welcome["resumed"] is False
    greeting = await page.recv()  # a fresh page is told where things stand
    assert greeting["type"] == "reply" and greeting["ack"] is None
    assert "Hi Alice Brown" in texts(greeting)
    assert greeting["replies"][-1]["choices"] == ["yes", "no"]
    assert greeting["where"]["step"] is None

    started = await page.tap("yes")
    assert "Starting ORD-1003" in texts(started)
    assert started["where"]["order_id"] == "ORD-1003"
    assert (started["where"]["step"], started["where"]["of"]) == (2, 7)
    assert started["replies"][-1]["needs"] == "fsan"
    assert started["replies"][-1]["sensitive"] is False
    # The names of the plan's secrets, so the page masks them wherever they are typed.
    assert "wifi_password" in started["where"]["sensitive"]
    assert greeting["where"]["sensitive"] == []

    ont = await page.say('{"fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": 2}')
    assert "ALCL90ABCDEF" in texts(ont)
    assert ont["where"]["step"] == 4
    wifi = await page.say("ssid=Lovelace")
    asked = wifi["replies"][-1]
    assert asked["needs"] == "wifi_password" and asked["sensitive"] is True

    status = await page.tap("status")  # the status button, mid-prompt
    assert "Step 4 of 7" in texts(status)
    assert status["where"]["step"] == 4
    assert status["replies"][-1]["sensitive"] is True  # still asking for the password

    done_wifi = await page.say("kettle-on-tuesday")
    assert "kettle-on-tuesday" not in json.dumps(done_wifi)
    assert done_wifi["where"]["step"] == 6
    assert done_wifi["replies"][-1]["choices"] == ["yes", "no"]

    closed = await page.tap("yes")
    assert "Order ORD-1003 is closed" in texts(closed)
    assert closed["where"]["order_id"] is None
    assert closed["replies"][-1]["choices"] == ["next", "help", "end"]
    bye = await page.tap("end")
    assert "Goodbye" in texts(bye)
    with http(server) as client:
        metrics = client.get("/metrics").text
    assert "techassist_web_connections 1.0" in metrics.splitlines()
    # Eight turns on the web bridge: the greeting and seven taps or messages.
    assert 'techassist_turn_seconds_count{bridge="web"} 8.0' in metrics.splitlines()


async def test_a_message_sent_again_after_a_reconnect_is_answered_without_running_twice(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    cookie = sign_in(server, tmp_path)
    first = await open_page(server, cookie)
    await first.hello()
    await first.recv()  # the greeting
    await first.tap("yes")
    # The page sends a value and loses the connection before the answer arrives.
    values = '{"fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": 2}'
    await first.send({"type": "message", "id": "c-lost", "text": values})
    await first.ws.close()

    second = await open_page(server, cookie)
    welcome = await second.hello(resume="s-seen")
    assert welcome["resumed"] is True  # no greeting turn follows a resume
    resent = await second.say(values, "c-lost")
    assert "ALCL90ABCDEF" in texts(resent)
    assert resent["where"]["step"] == 4
    again = await second.say(values, "c-lost")  # and once more: the same stored answer
    assert again == resent
    # The ONT was activated once: the next step goes on normally.
    status = await second.tap("status")
    assert status["where"]["step"] == 4
    assert "Step 4 of 7" in texts(status)


async def test_bad_frames_get_a_clear_message_and_change_nothing(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    page = await open_page(server, sign_in(server, tmp_path))
    await page.hello()
    greeting = await page.recv()
    for raw in (
        "yes",
        "[1, 2]",
        json.dumps({"type": "message", "text": "yes"}),
        json.dumps({"type": "message", "id": "no spaces allowed", "text": "yes"}),
        json.dumps({"type": "launch", "id": "c-1"}),
        json.dumps({"type": "message", "id": "c-1", "text": 5}),
        '{"type": "message", "id": "c-1", "text": "\\ud800"}',  # a lone surrogate
        "{" + '"a":[' * 5000,
    ):
        await page.ws.send(raw)
        error = await page.recv()
        assert error["type"] == "error" and error["message"]
    # Still proposing the same order: nothing was taken from those frames.
    status = await page.tap("status")
    assert status["where"]["order_id"] is None
    assert greeting["replies"][-1]["choices"] == ["yes", "no"]
    assert (await page.tap("yes"))["where"]["order_id"] == "ORD-1003"


async def test_an_old_page_is_told_to_reload(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    page = await open_page(server, sign_in(server, tmp_path))
    await page.send({"type": "hello", "v": 2, "resume": None})  # a valid one first
    await page.recv()
    await page.recv()
    await page.ws.send(json.dumps({"type": "hello", "v": 1}))
    error = await page.recv()
    assert error["type"] == "error" and "reload" in error["message"]


async def test_a_reminder_is_pushed_to_the_open_page_once(tmp_path: Path, open_page: Any) -> None:
    env = {**QUIET, "TECHASSIST_REMINDER_AFTER": "1", "TECHASSIST_REMINDER_INTERVAL": "0.2"}
    with running(tmp_path, **env) as server:
        page = await open_page(server, sign_in(server, tmp_path))
        await page.hello()
        await page.recv()
        await page.tap("yes")  # mid-order now; idle from here
        notice = await page.recv()
        assert notice["type"] == "notice" and notice["kind"] == "reminder"
        assert "Still on ORD-1003?" in notice["text"]
        # Delivered once: the next turn does not bring it again.
        status = await page.tap("status")
        assert "Still on" not in texts(status)


async def test_a_notice_waiting_while_the_page_was_closed_comes_on_the_next_hello(
    tmp_path: Path, open_page: Any
) -> None:
    env = {**QUIET, "TECHASSIST_REMINDER_AFTER": "1", "TECHASSIST_REMINDER_INTERVAL": "0.2"}
    with running(tmp_path, **env) as server:
        cookie = sign_in(server, tmp_path)
        page = await open_page(server, cookie)
        await page.hello()
        await page.recv()
        started = await page.tap("yes")
        await page.ws.close()
        await asyncio.sleep(2)  # idle past the reminder, with no page open
        back = await open_page(server, cookie)
        await back.hello(resume=started["id"])
        notice = await back.recv()
        assert notice["type"] == "notice" and "ORD-1003" in notice["text"]


async def test_a_slow_turn_shows_progress_before_its_one_reply(
    tmp_path: Path, open_page: Any
) -> None:
    env = {"TECHASSIST_WEB_TYPING_AFTER": "0", "TECHASSIST_SIM_LATENCY_MS": "300"}
    with running(tmp_path, **env) as server:
        page = await open_page(server, sign_in(server, tmp_path))
        await page.hello()
        await page.recv()

        async def turn(message_id: str, text: str) -> list[dict[str, Any]]:
            await page.send({"type": "message", "id": message_id, "text": text})
            frames = [await page.recv()]
            while frames[-1]["type"] != "reply":
                frames.append(await page.recv())
            return frames

        await turn("c-yes", "yes")
        frames = await turn(
            "c-ont", '{"fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": 2}'
        )
        assert frames[0]["type"] in ("typing", "progress")
        assert any(f["type"] == "progress" and f["text"] for f in frames)
        assert frames[-1]["ack"] == "c-ont"
        assert "ALCL90ABCDEF" in texts(frames[-1])


def test_behind_an_https_proxy_the_cookie_is_secure(tmp_path: Path) -> None:
    env = {**QUIET, "TECHASSIST_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    with running(tmp_path, **env) as server, http(server) as client:
        token = link_for(server, tmp_path).split("?t=", 1)[1]
        signed = client.post(
            "/api/signin",
            data={"t": token},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
        )
        assert signed.status_code == 303
        flags = {part.strip().lower() for part in signed.headers["set-cookie"].split(";")}
        assert {"secure", "httponly", "samesite=strict"} <= flags


def test_a_public_url_that_is_no_http_url_is_refused_with_its_name(tmp_path: Path) -> None:
    done = techassist(
        tmp_path, "tokens", "link", "--cuid", "AB1234", TECHASSIST_PUBLIC_URL="chat.example.com"
    )
    assert done.returncode != 0
    assert "TECHASSIST_PUBLIC_URL" in done.stderr and "Traceback" not in done.stderr
    assert "tal_" not in done.stdout
    given = techassist(
        tmp_path,
        "tokens",
        "link",
        "--cuid",
        "cd5678",
        TECHASSIST_PUBLIC_URL="https://chat.example.com/",
    )
    assert given.returncode == 0, given.stderr
    assert given.stdout.startswith("https://chat.example.com/signin?t=tal_")


async def test_the_cookie_decides_who_this_is_never_a_typed_cuid(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    page = await open_page(server, sign_in(server, tmp_path, "AB1234"))
    # No hello, so no greeting: the first message names another technician's CUID.
    first = await page.say("CD5678")
    assert "Hi Alice Brown" in texts(first)
    assert "Carlos" not in texts(first)
    assert first["where"]["cuid"] == "AB1234"


async def test_a_page_sending_too_fast_is_told_to_slow_down(tmp_path: Path, open_page: Any) -> None:
    with running(tmp_path, **QUIET, TECHASSIST_MESSAGES_PER_MINUTE="3") as server:
        page = await open_page(server, sign_in(server, tmp_path))
        await page.hello()
        await page.recv()
        await page.tap("status")
        await page.tap("status")
        await page.send({"type": "action", "id": "c-fast", "value": "yes"})
        refused = await page.recv()
        assert refused["type"] == "error" and "more than 3 a minute" in refused["message"]


def _at(when: datetime) -> datetime:
    return when


async def test_a_sign_in_link_lasts_fifteen_minutes(server: Server, tmp_path: Path) -> None:
    """Links issued 14 and 16 minutes ago (the credentials' clock set back): one works."""
    from orchestrator_core.credentials import Credentials
    from orchestrator_core.sqlite_workorders import SqliteWorkOrders

    db = SqliteWorkOrders(tmp_path / "workorders.db")
    try:
        issued: dict[int, str] = {}
        for minutes in (14, 16):
            then = datetime.now(UTC) - timedelta(minutes=minutes)
            credentials = Credentials(db, clock=functools.partial(_at, then))
            issued[minutes] = (await credentials.issue_link("CD5678")).secret
    finally:
        db.close()
    with http(server) as client:
        stale = client.post("/api/signin", data={"t": issued[16]})
        assert stale.status_code == 400 and "expired" in stale.text
        fresh = client.post("/api/signin", data={"t": issued[14]})
        assert fresh.status_code == 303 and fresh.cookies.get("techassist_web")
