"""The dispatcher console against the real server: sign-in, its cookie and CSRF, the
live feed and the escalation flow, driven over HTTP as the page drives it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bridges.web.console import COOKIE, encode_cookie
from orchestrator_core.secrets import FernetSecrets
from tests.bot.live import techassist
from tests.bridges.server import Server, running, start

KEY = FernetSecrets.new_key()
OTHER_KEY = FernetSecrets.new_key()
OPERATOR, PASSWORD = "ana", "correct horse battery staple"
WAIT = 15.0  # a generous bound on waits for something pushed; never a speed assertion
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
CSRF_META = re.compile(r'<meta name="csrf" content="([^"]+)">')


def add_operator(data_dir: Path, name: str = OPERATOR, password: str = PASSWORD) -> None:
    done = techassist(data_dir, "operators", "add", name, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stdout + done.stderr


def serve(data_dir: Path, key: str = KEY) -> Any:
    return running(data_dir, TECHASSIST_SECRET_KEY=key)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    add_operator(tmp_path)
    with serve(tmp_path) as srv:
        yield srv


@pytest.fixture
async def browser(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with client(server) as http:
        yield http


def client(server: Server) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, timeout=WAIT, trust_env=False)


async def sign_in(
    http: httpx.AsyncClient, name: str = OPERATOR, password: str = PASSWORD
) -> httpx.Response:
    form = await http.get("/ops/login")
    assert form.status_code == 200
    found = CSRF_FIELD.search(form.text)
    assert found is not None
    return await http.post(
        "/ops/login", data={"name": name, "password": password, "csrf": found.group(1)}
    )


async def page_csrf(http: httpx.AsyncClient) -> str:
    page = await http.get("/ops")
    assert page.status_code == 200, page.text
    found = CSRF_META.search(page.text)
    assert found is not None
    return found.group(1)


async def test_an_operator_signs_in_and_reaches_the_console(browser: httpx.AsyncClient) -> None:
    signed = await sign_in(browser)
    assert signed.status_code == 303 and signed.headers["location"] == "/ops"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    page = await browser.get("/ops")
    assert page.status_code == 200
    assert 'id="sessions"' in page.text and 'id="queue"' in page.text
    assert f'<strong id="operator">{OPERATOR}</strong>' in page.text
    me = await browser.get("/ops/api/me")
    assert me.json()["operator"] == OPERATOR
    assert (await browser.get("/ops/api/sessions")).status_code == 200
    assert (await browser.get("/ops/api/escalations")).json() == {"escalations": []}


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(
    browser: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(browser, OPERATOR, "not the password")
    unknown = await sign_in(browser, "nobody", PASSWORD)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "Wrong name or password." in answer.text
        assert COOKIE + "=" not in answer.headers.get("set-cookie", "")
    page = await browser.get("/ops")
    assert page.status_code == 303 and page.headers["location"] == "/ops/login"


async def test_failed_sign_ins_are_limited_per_name_and_address(
    browser: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert (await sign_in(browser, OPERATOR, "guess")).status_code == 401
    refused = await sign_in(browser)  # the right password, refused unchecked
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
    assert (await browser.get("/ops")).status_code == 303
    other = await sign_in(browser, "bob", "guess")  # another name is still checked
    assert other.status_code == 401


async def test_without_a_cookie_pages_go_to_sign_in_and_the_api_refuses(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/ops")
    assert page.status_code == 303 and page.headers["location"] == "/ops/login"
    for path in ("/ops/api/sessions", "/ops/api/escalations", "/ops/events", "/ops/api/me"):
        answer = await browser.get(path)
        assert answer.status_code == 401, path
        assert "sign in again" in answer.json()["error"]
    take = await browser.post("/ops/api/escalations/ESC-0001/take", json={})
    assert take.status_code == 401


def forged_cookies() -> dict[str, str]:
    key = FernetSecrets([KEY]).derive("console cookie")
    later = int(time.time()) + 3600
    good = encode_cookie(key, OPERATOR, "a" * 32, later)
    payload, mac = good.split(".")
    other = encode_cookie(key, "mallory", "a" * 32, later).split(".")[0]
    return {
        "expired": encode_cookie(key, OPERATOR, "a" * 32, int(time.time()) - 1),
        "another key": encode_cookie(
            FernetSecrets([OTHER_KEY]).derive("console cookie"), OPERATOR, "a" * 32, later
        ),
        "payload swapped": f"{other}.{mac}",
        "no signature": payload,
        "garbage": "not-a-cookie",
    }


@pytest.mark.parametrize("kind", list(forged_cookies()))
async def test_a_forged_or_expired_cookie_is_refused(server: Server, kind: str) -> None:
    cookie = forged_cookies()[kind]
    async with client(server) as http:
        http.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ops")
        page = await http.get("/ops")
        assert page.status_code == 303 and page.headers["location"] == "/ops/login"
        assert (await http.get("/ops/api/me")).status_code == 401


async def test_a_cookie_signed_here_but_never_issued_by_sign_in_works_with_the_shared_key(
    server: Server,
) -> None:
    """The control for the forgery test: the cookie format is all the server needs."""
    key = FernetSecrets([KEY]).derive("console cookie")
    cookie = encode_cookie(key, OPERATOR, "b" * 32, int(time.time()) + 60)
    async with client(server) as http:
        http.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ops")
        assert (await http.get("/ops/api/me")).json()["operator"] == OPERATOR


async def test_sign_in_without_its_csrf_token_is_refused(browser: httpx.AsyncClient) -> None:
    await browser.get("/ops/login")
    for data in (
        {"name": OPERATOR, "password": PASSWORD},
        {"name": OPERATOR, "password": PASSWORD, "csrf": "wrong"},
    ):
        answer = await browser.post("/ops/login", data=data)
        assert answer.status_code == 403 and "expired" in answer.text
        assert COOKIE + "=" not in answer.headers.get("set-cookie", "")
    assert (await browser.get("/ops")).status_code == 303


async def test_sign_out_needs_the_csrf_token_and_ends_the_session_in_the_browser(
    browser: httpx.AsyncClient,
) -> None:
    await sign_in(browser)
    csrf = await page_csrf(browser)
    refused = await browser.post("/ops/logout", data={"csrf": "wrong"})
    assert refused.status_code == 403
    assert (await browser.get("/ops")).status_code == 200
    out = await browser.post("/ops/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ops/login"
    assert (await browser.get("/ops")).status_code == 303


async def test_another_instance_with_the_same_secret_key_accepts_the_cookie(
    tmp_path: Path,
) -> None:
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    for data_dir in (first, second, third):  # each its own work orders, the same operator
        data_dir.mkdir()
        add_operator(data_dir)
    with serve(first) as one, serve(second) as two, serve(third, OTHER_KEY) as three:
        async with client(one) as http:
            assert (await sign_in(http)).status_code == 303
            cookie = http.cookies[COOKIE]
            csrf = await page_csrf(http)
        async with client(two) as http:
            http.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ops")
            assert (await http.get("/ops/api/me")).json() == {"operator": OPERATOR, "csrf": csrf}
            assert (await http.get("/ops")).status_code == 200
        async with client(three) as http:
            http.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ops")
            assert (await http.get("/ops/api/me")).status_code == 401


class Events:
    """The console's event stream, read as the page's EventSource reads it."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def next(self) -> tuple[str, Any]:
        kind, data = "message", ""
        async for line in self.lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data += line.removeprefix("data: ")
            elif line == "" and data:
                return kind, json.loads(data)
        raise AssertionError("the event stream ended")

    async def until(self, kind: str, holds: Any) -> Any:
        async def wait() -> Any:
            while True:
                got, data = await self.next()
                if got == kind and holds(data):
                    return data

        return await asyncio.wait_for(wait(), WAIT)


async def test_the_event_stream_shows_a_new_session(
    server: Server, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser)
    async with browser.stream("GET", "/ops/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        first = await events.until("sessions", lambda _: True)
        assert all(s["cuid"] != "CD5678" for s in first["sessions"])
        async with Technician(server, "CD5678"):
            shown = await events.until(
                "sessions", lambda d: any(s["cuid"] == "CD5678" for s in d["sessions"])
            )
    row = next(s for s in shown["sessions"] if s["cuid"] == "CD5678")
    assert row["bridge"] == "websocket" and row["name"] == "Carlos Diaz"


class Technician:
    """A technician on the legacy websocket client: one frame out, one frame back."""

    def __init__(self, server: Server, cuid: str) -> None:
        self.server = server
        self.cuid = cuid
        self.first: dict[str, Any] = {}

    async def __aenter__(self) -> Technician:
        self.ws = await connect(self.server.url, compression=None, open_timeout=WAIT, proxy=None)
        self.first = await self.say(self.cuid, kind="cuid")
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.ws.close()

    async def say(self, text: str, kind: str = "message") -> dict[str, Any]:
        await self.ws.send(json.dumps({"type": kind, "data": text}))
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT))
        return frame

    async def escalate(self) -> str:
        """Start the proposed order and hand it to a human; the escalation's id."""
        assert "ORD-1003" in self.first["message"]
        asked = await self.say("yes")
        assert asked["data_needed"] == "fsan", asked
        frame = await self.say("escalate")
        assert "escalated ORD-1003" in frame["message"], frame
        found = re.search(r"\b(ESC-\w+)", frame["message"])
        assert found is not None, frame
        return found.group(1)


async def test_actions_without_the_right_csrf_token_are_refused_and_change_nothing(
    server: Server, browser: httpx.AsyncClient
) -> None:
    async with Technician(server, "AB1234") as technician:
        escalation = await technician.escalate()
    await sign_in(browser)
    csrf = await page_csrf(browser)
    take = f"/ops/api/escalations/{escalation}/take"
    answer = f"/ops/api/escalations/{escalation}/answer"
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": csrf + "x"}):
        refused = await browser.post(take, json={}, headers=headers)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        refused = await browser.post(answer, json={"text": "hi"}, headers=headers)
        assert refused.status_code == 403
    async with client(server) as other:  # another operator session's token
        await sign_in(other)
        theirs = await page_csrf(other)
    assert theirs != csrf
    assert (await browser.post(take, json={}, headers={"X-CSRF-Token": theirs})).status_code == 403
    status = (await browser.get(f"/ops/api/escalations/{escalation}")).json()
    assert status["status"] == "open" and status["operator"] in (None, "")


async def test_an_answer_reaches_a_legacy_technician_in_the_next_reply(
    server: Server, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser)
    csrf = {"X-CSRF-Token": await page_csrf(browser)}
    async with Technician(server, "AB1234") as technician:
        escalation = await technician.escalate()
        queue = (await browser.get("/ops/api/escalations", params={"status": "open"})).json()
        item = next(e for e in queue["escalations"] if e["id"] == escalation)
        assert item["cuid"] == "AB1234" and item["order_id"] == "ORD-1003"
        assert item["status"] == "open"
        path = f"/ops/api/escalations/{escalation}"
        taken = await browser.post(f"{path}/take", json={}, headers=csrf)
        assert taken.status_code == 200, taken.text
        assert taken.json()["status"] == "taken" and taken.json()["operator"] == OPERATOR
        empty = await browser.post(f"{path}/answer", json={"text": "  "}, headers=csrf)
        assert empty.status_code == 400 and "answer" in empty.json()["error"]
        answered = await browser.post(
            f"{path}/answer", json={"text": "Use the spare ONT from the van."}, headers=csrf
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["status"] == "answered"
        assert answered.json()["sent_to"] == "techassist:websocket:::AB1234"
        frame = await technician.say("status")
        assert frame["message"].startswith(
            f"From the dispatcher ({OPERATOR}) about ORD-1003: Use the spare ONT from the van."
        ), frame
        again = await technician.say("status")
        assert "spare ONT" not in again["message"]  # delivered once
        closed = await browser.post(f"{path}/close", json={}, headers=csrf)
        assert closed.status_code == 200 and closed.json()["status"] == "closed"
        audit = (await browser.get("/ops/api/orders/ORD-1003/audit")).json()
        assert any(entry["tool"] == "escalate" for entry in audit["entries"])
    unknown = await browser.post("/ops/api/escalations/ESC-9999/take", json={}, headers=csrf)
    assert unknown.status_code == 404 and unknown.json()["error"]


async def test_a_hand_back_resumes_the_order_at_its_step_for_a_legacy_technician(
    server: Server, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser)
    csrf = {"X-CSRF-Token": await page_csrf(browser)}
    async with Technician(server, "AB1234") as technician:
        escalation = await technician.escalate()
        path = f"/ops/api/escalations/{escalation}"
        early = await browser.post(f"{path}/handback", json={}, headers=csrf)
        assert early.status_code == 409 and early.json()["error"]  # not taken yet
        assert (await browser.post(f"{path}/take", json={}, headers=csrf)).status_code == 200
        back = await browser.post(f"{path}/handback", json={}, headers=csrf)
        assert back.status_code == 200, back.text
        assert back.json()["status"] == "closed" and back.json()["outcome"] == "handed_back"
        frame = await technician.say("status")
        assert "ORD-1003 is back with you from the dispatcher (ana)" in frame["message"], frame
        assert frame["choices"][:2] == ["yes", "no"], frame
        resumed = await technician.say("yes")
        assert "Resuming ORD-1003 at step 2 of 7" in resumed["message"], resumed
        assert resumed["data_needed"] == "fsan"


async def test_one_escalation_is_taken_by_one_operator_and_a_cancel_needs_a_reason(
    tmp_path: Path,
) -> None:
    add_operator(tmp_path)
    add_operator(tmp_path, "bo", "another long password")
    with serve(tmp_path) as server:
        async with (
            Technician(server, "AB1234") as technician,
            client(server) as ana,
            client(server) as bo,
        ):
            escalation = await technician.escalate()
            await sign_in(ana)
            await sign_in(bo, "bo", "another long password")
            as_ana = {"X-CSRF-Token": await page_csrf(ana)}
            as_bo = {"X-CSRF-Token": await page_csrf(bo)}
            path = f"/ops/api/escalations/{escalation}"
            assert (await ana.post(f"{path}/take", json={}, headers=as_ana)).status_code == 200
            lost = await bo.post(f"{path}/take", json={}, headers=as_bo)
            assert lost.status_code == 409 and "ana" in lost.json()["error"]
            for body in ({}, {"reason": " "}, {"reason": 5}):
                refused = await ana.post(f"{path}/cancel", json=body, headers=as_ana)
                assert refused.status_code == 400 and "reason" in refused.json()["error"]
            control = await ana.post(f"{path}/answer", json={"text": "a\x00b"}, headers=as_ana)
            assert control.status_code == 400 and "cannot be sent" in control.json()["error"]
            long = await ana.post(f"{path}/answer", json={"text": "x" * 4001}, headers=as_ana)
            assert long.status_code == 400 and "too long" in long.json()["error"]
            garbled = await ana.post(
                f"{path}/cancel",
                content=b"{not json",
                headers={**as_ana, "Content-Type": "application/json"},
            )
            assert garbled.status_code == 400
            assert (await ana.get(path)).json()["status"] == "taken"
            cancelled = await ana.post(
                f"{path}/cancel", json={"reason": "Customer moved out."}, headers=as_ana
            )
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["outcome"] == "cancelled"
            frame = await technician.say("status")
            assert "ORD-1003" in frame["message"] and "Customer moved out." in frame["message"]


def test_the_server_stops_cleanly_while_a_console_watches(tmp_path: Path) -> None:
    add_operator(tmp_path)
    server = start(tmp_path, TECHASSIST_SECRET_KEY=KEY)
    try:
        with httpx.Client(base_url=server.http, timeout=WAIT, trust_env=False) as http:
            form = http.get("/ops/login")
            found = CSRF_FIELD.search(form.text)
            assert found is not None
            data = {"name": OPERATOR, "password": PASSWORD, "csrf": found.group(1)}
            assert http.post("/ops/login", data=data).status_code == 303
            with http.stream("GET", "/ops/events") as response:
                lines = response.iter_lines()
                assert next(lines).startswith("retry:")
                server.process.terminate()
                # It shuts down on its own (uvicorn re-raises the SIGTERM it handled), not
                # held open by the stream until it is killed.
                assert server.process.wait(timeout=WAIT) in (0, -signal.SIGTERM)
                server.reader.join(timeout=WAIT)
                assert any("Finished server process" in line for line in server.output)
    finally:
        server.stop()


async def test_removing_an_operator_signs_them_out(
    tmp_path: Path, server: Server, browser: httpx.AsyncClient
) -> None:
    await sign_in(browser)
    assert (await browser.get("/ops/api/me")).status_code == 200
    removed = techassist(tmp_path, "operators", "remove", OPERATOR)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    deadline = time.monotonic() + WAIT
    while (answer := await browser.get("/ops/api/me")).status_code == 200:
        assert time.monotonic() < deadline, "the removed operator is still signed in"
        await asyncio.sleep(0.2)
    assert answer.status_code == 401
    assert (await browser.get("/ops")).status_code == 303
