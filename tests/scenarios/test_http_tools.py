"""The bundled plans over HTTP tools: the real simulator process and the real server.

``techassist simulate`` and ``techassist serve`` (with a copy of the demo tools
file pointed at the simulator) start once for the module; a legacy websocket
client talks to the server, and the simulator's admin endpoint injects faults
and tells what reached it. Each test works on its own order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.bridges.http_rig import (
    SIM_TOKEN,
    WIFI_PASSWORD,
    SimAdmin,
    audit_rows,
    serve_http,
    simulator,
)
from tests.bridges.server import Server
from tests.bridges.test_websocket import TIMEOUT, Legacy

#: A fault that holds a request until the client gives up; hangs no longer than this.
HANG = 5


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with simulator(tmp_path_factory.mktemp("simulator")) as server:
        yield server


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(sim: Server, data_dir: Path) -> Iterator[Server]:
    with serve_http(data_dir, sim) as srv:
        yield srv


@pytest.fixture
def admin(sim: Server) -> Iterator[SimAdmin]:
    """The simulator's admin endpoint, reset: no faults, no counts, no activations."""
    admin = SimAdmin(sim)
    admin.reset()
    try:
        yield admin
    finally:
        admin.reset()
        admin.close()


@pytest.fixture
async def begin(server: Server) -> AsyncIterator[Any]:
    """Sign in as a technician and start one order; the first frame of its plan."""
    clients: list[Legacy] = []

    async def start(cuid: str, order_id: str) -> tuple[Legacy, dict[str, Any]]:
        ws = await connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None)
        client = Legacy(ws)
        clients.append(client)
        first = await client.ask({"type": "cuid", "data": cuid})
        if order_id in first["message"] and first.get("choices") == ["yes", "no"]:
            return client, await client.say("yes")
        await client.say("no")
        return client, await client.say(order_id)

    try:
        yield start
    finally:
        for client in clients:
            await client.ws.close()


async def finish(client: Legacy, order_id: str, frame: dict[str, Any]) -> dict[str, Any]:
    """From the Wi-Fi's question to the closed order, then the end of the conversation,
    so the technician's next conversation starts afresh; the closing frame."""
    assert frame["data_needed"] == "ssid", frame
    frame = await client.say("HomeNet")
    assert frame["data_needed"] == "wifi_password", frame
    frame = await client.say(WIFI_PASSWORD)
    assert frame["data_needed"] == "customer_online", frame
    closed = await client.say("yes")
    assert f"Order {order_id} is closed" in closed["message"], closed
    await end(client)
    return closed


async def end(client: Legacy) -> None:
    """End the conversation after a closed order."""
    bye = await client.say("end")
    assert bye["type"] == "display" and "Orders completed" in bye["message"], bye


async def test_an_installation_runs_over_http_and_closes_the_order(
    begin: Any, admin: SimAdmin
) -> None:
    client, frame = await begin("AB1234", "ORD-1003")
    assert frame["data_needed"] == "fsan", frame
    frame = await client.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await finish(client, "ORD-1003", frame)
    effects = admin.stats()["effects"]
    assert effects == {
        "activate_ont": 1,
        "check_light_levels": 1,
        "configure_wifi": 1,
        "run_speed_test": 1,
    }


async def test_a_repair_runs_over_http_and_closes_the_order(begin: Any, admin: SimAdmin) -> None:
    client, frame = await begin("CD5678", "ORD-2001")
    assert "Line test:" in frame["message"] and frame["data_needed"] == "diagnosis_code", frame
    done = await client.say("ont_fault")
    assert done["data_needed"] == "new_serial", done
    done = await client.say("CXNK00778899")
    assert "ONT replaced" in done["message"] and "CXNK00778899" in done["message"], done
    assert "Order ORD-2001 is closed" in done["message"], done
    await end(client)
    effects = admin.stats()["effects"]
    assert effects == {"run_line_test": 2, "replace_equipment": 1}  # the test and the retest


async def test_an_activation_whose_answer_was_lost_is_not_done_twice(
    begin: Any, admin: SimAdmin, data_dir: Path
) -> None:
    admin.faults(
        {
            "activate_ont": {
                "timeout_rate": 1,
                "after_effect": True,
                "times": 1,
                "hang_seconds": HANG,
            }
        }
    )
    client, frame = await begin("AB1234", "ORD-1005")
    lost = await client.say("fsan=ALCL1A2B3C4D model=G-010G-P ethernet_port=2")
    assert "retry" in lost["choices"], lost
    done = await client.say("retry")
    assert "ONT ALCL1A2B3C4D (G-010G-P) is active" in done["message"], done
    assert done["data_needed"] == "ssid", done
    stats = admin.stats()
    assert stats["requests"]["activate_ont"] == 2
    assert stats["effects"]["activate_ont"] == 1 and stats["replays"]["activate_ont"] == 1
    tries = [
        row
        for row in audit_rows(data_dir)
        if row["tool"] == "activate_ont" and row["order_id"] == "ORD-1005"
    ]
    assert [bool(row["ok"]) for row in tries] == [False, True]
    keys = {json.loads(row["result"]).get("idempotency_key") for row in tries}
    assert len(keys) == 1 and None not in keys  # the technician's retry sent the same key
    await finish(client, "ORD-1005", done)


async def test_a_breaker_opens_on_a_failing_host_and_closes_after_it_recovers(
    begin: Any, admin: SimAdmin
) -> None:
    admin.faults({"activate_ont": {"error_rate": 1.0}})
    client, frame = await begin("AB1234", "ORD-1010")
    failed = await client.say("fsan=ALCLF00D0001 model=G-240W-F ethernet_port=1")
    for _ in range(2):  # one try per turn: the activation is not idempotent
        assert "retry" in failed["choices"], failed
        failed = await client.say("retry")
    assert admin.requests("activate_ont") == 3  # the breaker's threshold
    resting = await client.say("retry")
    assert "failed 3 times in a row, so TechAssist is giving it a rest" in resting["message"]
    assert "try again in" in resting["message"] and "retry" in resting["choices"], resting
    assert admin.requests("activate_ont") == 3  # answered at once: nothing reached the host
    admin.faults({})
    for _ in range(40):  # bounded: the cool-down is 1 s
        await asyncio.sleep(0.1)
        frame = await client.say("retry")
        if "giving it a rest" not in frame["message"]:
            break
    assert "ONT ALCLF00D0001 (G-240W-F) is active" in frame["message"], frame
    assert admin.effects("activate_ont") == 1
    await finish(client, "ORD-1010", frame)


async def test_a_serial_in_use_is_told_plainly_and_asked_again(begin: Any, admin: SimAdmin) -> None:
    admin.activate_elsewhere("ALCL5E6F7A8B", "ORD-9999")
    client, frame = await begin("CD5678", "ORD-2002")
    refused = await client.say("fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3")
    assert "Serial ALCL5E6F7A8B is already in use on another order." in refused["message"]
    assert "HTTP" not in refused["message"] and "409" not in refused["message"]
    assert refused["data_needed"] == "fsan", refused
    done = await client.say("ALCL90ABCDEF")
    assert "ONT ALCL90ABCDEF (G-010G-P) is active" in done["message"], done
    assert admin.effects("activate_ont") == 2  # the other system's and ours
    await finish(client, "ORD-2002", done)


async def test_no_credential_or_wifi_password_is_written_anywhere(
    begin: Any, admin: SimAdmin, sim: Server, server: Server, data_dir: Path
) -> None:
    client, frame = await begin("AB1234", "ORD-1006")
    asked = await client.say("fsan=ALCL1A2B3C4D model=G-240W-F ethernet_port=4")
    await finish(client, "ORD-1006", asked)
    assert admin.effects("configure_wifi") == 1
    rows = json.dumps(audit_rows(data_dir))
    assert "configure_wifi" in rows
    for output in (sim.output, server.output):
        logged = "".join(output)
        assert "DEBUG" in logged  # the most talkative level
        assert SIM_TOKEN not in logged and WIFI_PASSWORD not in logged
    assert SIM_TOKEN not in rows and WIFI_PASSWORD not in rows
