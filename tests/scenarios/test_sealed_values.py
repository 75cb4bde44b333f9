"""A sensitive value is sealed while a session holds it and gone once its step is done."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.secrets import FernetSecrets
from tests.conftest import ServicesFactory
from tests.scenarios.helpers import question, said

PASSWORD = "harbour-lantern-42"


def stored(services: Services, chat: MemoryBridge) -> str:
    with closing(sqlite3.connect(services.settings.sessions_path)) as db:
        row = db.execute("SELECT data FROM sessions WHERE key = ?", (chat.key.as_str(),)).fetchone()
    return str(row[0])


async def started(services: Services) -> MemoryBridge:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("yes")
    # The password comes ahead of its step, so the session holds it for two steps.
    reply = await chat.say(
        f"fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2 wifi_password={PASSWORD}"
    )
    assert question(reply).needs == "ssid"
    return chat


async def test_a_held_password_is_stored_sealed_and_dropped_after_its_step(
    services: Services,
) -> None:
    chat = await started(services)
    row = stored(services, chat)
    assert PASSWORD not in row
    assert "wifi_password" in json.loads(row)["sealed"]
    done = await chat.say("ssid=Lovelace")
    assert 'Wi-Fi "Lovelace" is set up' in said(done)
    row = stored(services, chat)
    assert PASSWORD not in row and "wifi_password" not in row


async def test_a_restart_opens_the_sealed_value_with_the_key_file(
    make_services: ServicesFactory,
) -> None:
    chat = await started(await make_services())
    again = await make_services()  # a new process on the same data directory
    resumed = MemoryBridge(again.orchestrator, "AB1234")
    await resumed.start()
    done = await resumed.say("ssid=Lovelace")
    assert 'Wi-Fi "Lovelace" is set up' in said(done), said(done)
    assert chat.key == resumed.key


async def test_a_password_saved_in_plain_by_an_older_version_still_loads(
    services: Services,
) -> None:
    chat = await started(services)
    session = await services.sessions.get_session_data(chat.key)
    assert session is not None and session.values["wifi_password"] == PASSWORD
    plain = session.model_dump_json()  # as versions that did not seal wrote it
    with closing(sqlite3.connect(services.settings.sessions_path)) as db, db:
        db.execute("UPDATE sessions SET data = ? WHERE key = ?", (plain, chat.key.as_str()))
    assert PASSWORD in stored(services, chat)
    done = await chat.say("ssid=Lovelace")
    assert 'Wi-Fi "Lovelace" is set up' in said(done)
    assert PASSWORD not in stored(services, chat)


async def test_a_value_sealed_with_a_lost_key_is_asked_for_again(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    await started(await make_services())
    other = await make_services(secret_key=FernetSecrets.new_key())
    resumed = MemoryBridge(other.orchestrator, "AB1234")
    await resumed.start()
    reply = await resumed.say("ssid=Lovelace")
    assert question(reply).needs == "wifi_password"
