"""The running server reminds a technician idle mid-order once, and the legacy client, which can
take no frame it did not ask for, never shows the reminder."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, open_client  # noqa: F401 - a fixture

REMINDED = "reminded 1 idle technician(s)"


async def logged(server: Server, text: str) -> None:
    """Wait until the server has logged a line holding ``text``."""
    for _ in range(int(TIMEOUT / 0.05)):
        if any(text in line for line in server.output):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the server never logged {text!r}:\n" + "".join(server.output))


async def test_an_idle_technician_is_reminded_once_and_the_legacy_client_never_sees_it(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    quick = {"TECHASSIST_REMINDER_AFTER": "0.3", "TECHASSIST_REMINDER_INTERVAL": "0.05"}
    with running(tmp_path, **quick) as server:
        client, proposal = await open_client(server, "AB1234")
        assert proposal is not None and "ORD-1003" in json.dumps(proposal)
        started = await client.say("yes")
        assert "fsan" in json.dumps(started).lower()
        await logged(server, REMINDED)
        # Many passes later the reminder is still the only one: once per idle period.
        await asyncio.sleep(0.5)
        back = await client.say("alcl90abcdef")
        assert "Still on" not in json.dumps(back)
        assert "model" in json.dumps(back).lower()
        assert sum(REMINDED in line for line in server.output) == 1
