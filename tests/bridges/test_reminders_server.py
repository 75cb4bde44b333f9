"""The running server reminds a technician idle mid-order once, and the legacy client, which can
take no frame it did not ask for, never shows the reminder."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, open_client  # noqa: F401 - a fixture
from tests.redis_server import delete_prefix, new_prefix, redis_url

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


def stored_outbox(data_dir: Path) -> list[dict[str, Any]]:
    """The outbox of the only stored session, read from the server's SQLite file."""
    with closing(sqlite3.connect(data_dir / "sessions.db")) as db:
        [(data,)] = db.execute("SELECT data FROM sessions").fetchall()
    outbox: list[dict[str, Any]] = json.loads(data)["outbox"]
    return outbox


async def test_a_reminder_due_before_a_restart_fires_after_it_and_only_once(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    # The first server never looks for due reminders: it stops with one due.
    asleep = {"TECHASSIST_REMINDER_AFTER": "0.1", "TECHASSIST_REMINDER_INTERVAL": "3600"}
    with running(tmp_path, **asleep) as server:
        client, _ = await open_client(server, "AB1234")
        await client.say("yes")
    quick = {"TECHASSIST_REMINDER_AFTER": "0.1", "TECHASSIST_REMINDER_INTERVAL": "0.05"}
    with running(tmp_path, **quick) as server:
        await logged(server, REMINDED)
    with running(tmp_path, **quick) as server:
        await asyncio.sleep(0.5)  # many passes: none of them reminds again
        assert not any(REMINDED in line for line in server.output)
    outbox = stored_outbox(tmp_path)
    assert [n["kind"] for n in outbox] == ["reminder"]
    assert outbox[0]["text"] == "Still on ORD-1003? Say 'status' to see where we are."


@pytest.mark.scale
async def test_two_servers_on_one_redis_remind_an_idle_technician_once(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    url, prefix = redis_url(), new_prefix()
    shared = {
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
        "TECHASSIST_REMINDER_AFTER": "0.3",
        "TECHASSIST_REMINDER_INTERVAL": "0.02",
    }
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    try:
        with running(tmp_path / "one", **shared) as one, running(tmp_path / "two", **shared) as two:
            client, _ = await open_client(one, "AB1234")
            await client.say("yes")
            for _ in range(int(TIMEOUT / 0.05)):
                if any(REMINDED in line for line in one.output + two.output):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # many passes on both: none reminds again
            assert sum(REMINDED in line for line in one.output + two.output) == 1
            back = await client.say("alcl90abcdef")
            assert "Still on" not in json.dumps(back)
    finally:
        delete_prefix(url, prefix)
