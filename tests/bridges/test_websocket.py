"""The websocket bridge against the real server, driven the way the legacy client drives it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.bot.live import techassist
from tests.bridges.server import Server, running, start

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running(tmp_path) as srv:
        yield srv


class Legacy:
    """Speaks exactly like the legacy client.py: one frame out, one frame back."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.sent = 0
        self.received = 0

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.sent += 1
        await self.ws.send(frame if isinstance(frame, str | bytes) else json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        self.received += 1
        return frame

    async def ask(self, frame: dict[str, Any] | str | bytes) -> dict[str, Any]:
        await self.send(frame)
        return await self.recv()

    async def say(self, text: str) -> dict[str, Any]:
        return await self.ask({"type": "message", "data": text})

    async def closed_with(self) -> int | None:
        """Wait for the server to close; return the close code."""
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        return self.ws.close_code


@pytest.fixture
async def open_client() -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def factory(
        server: Server, cuid: str | None = None
    ) -> tuple[Legacy, dict[str, Any] | None]:
        # proxy=None: a developer's HTTP(S)_PROXY must not swallow loopback traffic.
        ws = await connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None)
        opened.append(ws)
        client = Legacy(ws)
        first = await client.ask({"type": "cuid", "data": cuid}) if cuid else None
        return client, first

    try:
        yield factory
    finally:
        for ws in opened:
            await ws.close()


async def test_a_legacy_client_completes_a_full_installation(
    server: Server, open_client: Any
) -> None:
    client, first = await open_client(server, "AB1234")
    assert first["type"] == "input" and "ORD-1003" in first["message"]
    assert first["choices"] == ["yes", "no"] and first["data"]["order"]["order_id"] == "ORD-1003"
    frame = await client.say("yes")
    assert frame["data_needed"] == "fsan"
    for answer, needs in [
        ("ALCL90ABCDEF", "model"),
        ("G-240W-F", "ethernet_port"),
        ("2", "ssid"),
        ("HomeNet", "wifi_password"),
        ("s3cret-passw0rd", "customer_online"),
    ]:
        frame = await client.say(answer)
        assert frame["type"] == "input" and frame["data_needed"] == needs, frame
    assert frame["choices"] == ["yes", "no"]
    frame = await client.say("yes")
    assert "Order ORD-1003 is closed" in frame["message"]
    assert frame["choices"] == ["next", "help", "end"]
    last = await client.say("end")
    assert (
        last["type"] == "display" and "Orders completed this session: ORD-1003" in last["message"]
    )
    assert await client.closed_with() == 1000
    assert client.received == client.sent  # exactly one frame for each client frame


async def test_a_turns_replies_fold_into_one_frame_ending_with_the_question(
    server: Server, open_client: Any
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    frame = await client.say("{'ethernet_port': 2, 'fsan': 'ALCL1A2B3C4D', 'model': 'G-010G-P'}")
    lines = frame["message"].splitlines()
    assert lines[0].startswith("ONT ALCL1A2B3C4D (G-010G-P) is active")
    assert any(line.startswith("Light levels OK") for line in lines)
    assert frame["data_needed"] == "ssid" and lines[-1].startswith("What should the Wi-Fi")
    assert frame["data"]["step"] == "light_levels"  # from the turn's last structured reply


async def test_quit_closes_and_a_reconnect_resumes_at_the_same_question(
    server: Server, open_client: Any
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    asked = await client.say("ALCL90ABCDEF")
    bye = await client.say("quit")
    assert bye["type"] == "display" and "saved" in bye["message"]
    assert await client.closed_with() == 1000
    again, first = await open_client(server, "AB1234")
    assert "Welcome back, Alice Brown" in first["message"]
    assert first["message"].endswith(asked["message"].splitlines()[-1])
    assert first["data_needed"] == "model"


async def test_a_killed_server_restarts_and_the_conversation_goes_on(
    tmp_path: Path, open_client: Any
) -> None:
    first_server = start(tmp_path)
    try:
        client, _ = await open_client(first_server, "CD5678")
        await client.say("no")
        await client.say("ORD-2002")
        await client.say("fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3")
        pending = await client.say("ssid=Lab")
        assert pending["data_needed"] == "wifi_password"
        first_server.kill()
    finally:
        first_server.stop()
    with running(tmp_path) as second_server:
        again, first = await open_client(second_server, "CD5678")
        assert "Welcome back, Carlos Diaz" in first["message"] and "ORD-2002" in first["message"]
        assert first["data_needed"] == "wifi_password"
        status = await again.say("status")
        values = status["data"]["values"]
        assert (values["fsan"], values["model"], values["ethernet_port"], values["ssid"]) == (
            "ALCL5E6F7A8B",
            "G-010G-P",
            3,
            "Lab",
        )


@pytest.mark.parametrize(
    "bad",
    [
        "[1, 2, 3]",
        '{"type": "message"}',
        '{"type": "message", "data": 42}',
        '{"type": "message", "data": null}',
        b"\x00\x01binary",
    ],
)
async def test_a_bad_frame_is_explained_and_changes_nothing(
    server: Server, open_client: Any, bad: str | bytes
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    before = await client.say("status")
    explained = await client.ask(bad)
    assert explained["type"] == "input" and '"type": "message"' in explained["message"]
    after = await client.say("status")
    assert after["message"] == before["message"]
    assert (await client.say("ALCL90ABCDEF"))["data_needed"] == "model"


async def test_a_plain_text_frame_counts_as_its_data(server: Server, open_client: Any) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    frame = await client.ask("ALCL90ABCDEF")
    assert frame["data_needed"] == "model"


async def test_an_oversized_frame_closes_the_connection_with_1009(
    server: Server, open_client: Any
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.send({"type": "message", "data": "x" * (64 * 1024 + 1)})
    assert await client.closed_with() == 1009
    again, first = await open_client(server, "AB1234")
    assert "ORD-1003" in first["message"]  # the server and the session are fine


async def test_a_second_connection_takes_the_session_over(server: Server, open_client: Any) -> None:
    first, _ = await open_client(server, "AB1234")
    await first.say("yes")
    second, hello = await open_client(server, "AB1234")
    assert hello["data_needed"] == "fsan"
    notice = await first.recv()
    assert notice["type"] == "display" and "another connection" in notice["message"]
    assert await first.closed_with() == 1000
    assert (await second.say("ALCL90ABCDEF"))["data_needed"] == "model"


async def test_an_unknown_cuid_is_asked_for_again_on_the_same_connection(
    server: Server, open_client: Any
) -> None:
    client, refused = await open_client(server, "ZZ0000")
    assert refused["type"] == "input" and refused["data_needed"] == "cuid"
    assert "couldn't identify you" in refused["message"] and "ZZ0000" not in refused["message"]
    frame = await client.say("CD5678")
    assert "Hi Carlos Diaz" in frame["message"]


async def test_a_client_that_leaves_mid_turn_sees_the_replies_on_return(
    tmp_path: Path, open_client: Any
) -> None:
    with running(tmp_path, TECHASSIST_SIM_LATENCY_MS="400") as srv:
        client, _ = await open_client(srv, "AB1234")
        await client.say("yes")
        await client.send(
            {"type": "message", "data": "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2"}
        )
        await client.ws.close()  # gone before the slow tools answer
        await asyncio.sleep(0)
        again, first = await open_client(srv, "AB1234")
        assert "ONT ALCL90ABCDEF (G-240W-F) is active" in first["message"]
        assert first["data_needed"] == "ssid"


def _no_proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def _get(url: str) -> tuple[int, dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=TIMEOUT) as response:
        return response.status, json.loads(response.read())


def test_health_and_readiness_answer(server: Server) -> None:
    assert _get(server.http + "/healthz") == (200, {"status": "ok"})
    status, body = _get(server.http + "/readyz")
    assert status == 200 and body["ready"] is True and body["store"] == "ok" and body["plans"] == 2


def test_client_py_completes_an_installation(server: Server) -> None:
    script = "yes\nfsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2\nskip\nyes\nend\n"
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--url", server.url, "--cuid", "AB1234"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        env=_no_proxy_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "[yes | no]" in done.stdout and "service tier" not in done.stdout.lower()
    assert "Orders completed this session: ORD-1003" in done.stdout


def test_the_client_asks_for_the_cuid_and_leaves_cleanly_at_end_of_input(server: Server) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "client", "--url", server.url],
        input="EF9012\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=_no_proxy_env(),
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "no open orders" in done.stdout and "progress is saved" in done.stdout


def test_the_client_says_plainly_when_no_server_answers(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "client.py"),
            "--url",
            "ws://127.0.0.1:9/start_task",
            "--cuid",
            "AB1234",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_no_proxy_env(),
    )
    assert done.returncode == 1 and "Cannot connect to ws://127.0.0.1:9/start_task" in done.stdout


async def test_a_connection_stays_with_the_technician_it_identified(
    server: Server, open_client: Any
) -> None:
    client, _ = await open_client(server, "AB1234")
    other = await client.ask({"type": "cuid", "data": "CD5678"})
    assert other["type"] == "input" and "connected as AB1234" in other["message"]
    again = await client.ask({"type": "cuid", "data": "AB1234"})
    assert "Welcome back, Alice Brown" in again["message"] and "ORD-1003" in again["message"]


async def test_quit_before_identifying_says_goodbye_and_closes(
    server: Server, open_client: Any
) -> None:
    client, refused = await open_client(server, "ZZ0000")
    assert refused["data_needed"] == "cuid"
    goodbye = await client.say("quit")
    assert goodbye["type"] == "display" and "Goodbye" in goodbye["message"]
    assert await client.closed_with() == 1000


async def test_an_empty_cuid_is_asked_for_again(server: Server, open_client: Any) -> None:
    client, _ = await open_client(server)
    asked = await client.ask({"type": "cuid", "data": "  "})
    assert asked["data_needed"] == "cuid"
    assert "Hi Alice Brown" in (await client.ask({"type": "cuid", "data": "AB1234"}))["message"]


async def test_an_order_without_a_service_tier_is_worked_to_the_end_over_the_websocket(
    tmp_path: Path, open_client: Any
) -> None:
    """An operator's export without tiers: the speed test asks, with the tiers as choices."""
    data = {
        "technicians": [{"cuid": "ZZ0001", "name": "Zoë Zimmer"}],
        "orders": [
            {
                "order_id": "EXP-1",
                "cuid": "ZZ0001",
                "order_type": "installation",
                "status": "assigned",
                "scheduled_start": "2026-12-02T09:00:00Z",
                "created_at": "2026-11-20T08:00:00Z",
                "customer_name": "Grace Hopper",
                "address": "902 Birch Ave",
                "gate_code": "4711",
            }
        ],
        "inventory": [{"serial": "ALCL90ABCDEF", "model": "G-240W-F", "status": "available"}],
    }
    export = tmp_path / "export.json"
    export.write_text(json.dumps(data))
    imported = techassist(tmp_path, "orders", "import", str(export), TECHASSIST_SEED_DEMO="false")
    assert imported.returncode == 0, imported.stderr
    assert "service_tier" in imported.stdout  # it says what the conversation will ask
    with running(tmp_path, TECHASSIST_SEED_DEMO="false") as srv:
        client, proposal = await open_client(srv, "ZZ0001")
        assert proposal is not None and "EXP-1" in proposal["message"]
        started = await client.say("yes")
        assert "Gate code: 4711" in started["message"] and started["data_needed"] == "fsan"
        values = (
            "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=1 ssid=Lab wifi_password=grace-1906"
        )
        tier = await client.say(values)
        assert tier["data_needed"] == "service_tier" and tier["choices"] == ["300M", "500M", "1G"]
        assert "This order has no service tier recorded." in tier["message"]
        online = await client.say("1G")
        assert "Speed test passed for the 1G tier" in online["message"]
        closed = await client.say("yes")
        assert "Order EXP-1 is closed" in closed["message"]
        for frame in (proposal, started, tier, online, closed):
            for placeholder in (": ?", " ?.", "?,", "None", "null", "{'", "{}"):
                assert placeholder not in frame["message"], frame["message"]
