"""A dispatcher's answer and hand-back reach a legacy ``client.py`` technician in the next
reply, and a reminder never does: the real server, the legacy protocol, and a dispatch desk
working on the same data directory, as a second process would."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.wiring import Services
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import open_client
from tests.conftest import ServicesFactory

__all__ = ["open_client"]

REMINDED = "reminded 1 idle technician(s)"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # A reminder due one second after each turn, looked for five times a second.
    with running(
        tmp_path, TECHASSIST_REMINDER_AFTER="1", TECHASSIST_REMINDER_INTERVAL="0.2"
    ) as srv:
        yield srv


@pytest.fixture
async def desk(tmp_path: Path, make_services: ServicesFactory) -> AsyncIterator[Services]:
    """The dispatch desk of a second process on the server's data directory."""
    yield await make_services(tmp_path)


async def reminders_fired(server: Server, count: int) -> None:
    """Wait until the server has logged ``count`` reminders (at most 15 s)."""
    for _ in range(300):
        if "".join(server.output).count(REMINDED) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no reminder fired:\n" + "".join(server.output))


async def test_an_answer_comes_first_in_the_next_reply_and_a_reminder_never_shows(
    server: Server, open_client: Any, desk: Services
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    await reminders_fired(server, 1)  # the technician sat idle mid-order
    asked = await client.say("ALCL90ABCDEF")
    assert "Still on" not in asked["message"] and asked["data_needed"] == "model"
    escalated = await client.say("escalate")
    (ident,) = re.findall(r"ESC-\d+", escalated["message"])
    await desk.dispatch.take(ident, "ana")
    await desk.dispatch.answer(ident, "ana", "The model is printed under the barcode.")
    frame: dict[str, Any] = await client.say("status")
    lines = frame["message"].splitlines()
    assert lines[0] == (
        "From the dispatcher (ana) about ORD-1003: The model is printed under the barcode."
    ), frame
    assert len(lines) > 1 and "Still on" not in frame["message"]
    again = await client.say("status")
    assert "barcode" not in again["message"]  # delivered once
    assert client.received == client.sent  # still one frame for each client frame


async def test_a_hand_back_reaches_a_legacy_client_who_finishes_the_order(
    server: Server, open_client: Any, desk: Services
) -> None:
    client, _ = await open_client(server, "AB1234")
    await client.say("yes")
    await client.say("ALCL90ABCDEF")
    escalated = await client.say("escalate")
    (ident,) = re.findall(r"ESC-\d+", escalated["message"])
    await desk.dispatch.take(ident, "ana")
    await desk.dispatch.hand_back(ident, "ana")
    offer = await client.say("status")
    assert offer["message"].startswith("ORD-1003 is back with you from the dispatcher (ana)")
    assert offer["choices"][:2] == ["yes", "no"], offer
    frame = await client.say("yes")
    assert "Resuming ORD-1003 at step 2" in frame["message"] and frame["data_needed"] == "model"
    for answer in ("G-240W-F", "2", "HomeNet", "s3cret-passw0rd"):
        frame = await client.say(answer)
    assert frame["choices"] == ["yes", "no"], frame
    done = await client.say("yes")
    assert "Order ORD-1003 is closed" in done["message"], done
    order = await desk.workorders.get_order("ORD-1003")
    assert order is not None and order.status == "completed"
