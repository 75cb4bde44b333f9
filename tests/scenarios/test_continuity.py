"""A conversation survives restarts, quits, redeliveries and plan edits."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from cryptography.fernet import Fernet

from bridges.memory import MemoryBridge
from orchestrator_core.orchestrator import UNAVAILABLE
from plans import PLANS_DIR
from tests.conftest import ServicesFactory
from tests.own_servers import free_port
from tests.scenarios.helpers import question, said
from tests.scenarios.test_installation import start_top_installation


async def test_a_new_orchestrator_on_the_same_file_resumes_mid_plan(
    make_services: ServicesFactory,
) -> None:
    first = await make_services()
    chat = await start_top_installation(first)
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    asked = question(await chat.say("HomeNet"))
    assert asked.needs == "wifi_password"
    await first.aclose()

    second = await make_services()
    resumed = await MemoryBridge(second.orchestrator, "AB1234").start()
    assert "Welcome back, Alice Brown" in said(resumed)
    assert "ORD-1003" in said(resumed) and "step 4 of 7" in said(resumed)
    assert question(resumed).text == asked.text

    again = MemoryBridge(second.orchestrator, "AB1234")
    status = await again.say("status")
    values = status[0].data["values"]  # type: ignore[index]
    assert values == {
        "fsan": "ALCL90ABCDEF",
        "model": "G-240W-F",
        "ethernet_port": 2,
        "ont_id": values["ont_id"],
        "rx_power_dbm": values["rx_power_dbm"],
        "tx_power_dbm": values["tx_power_dbm"],
        "light_ok": True,
        "ssid": "HomeNet",
    }
    finished = await again.say("pa55word-long")
    assert "Speed test passed" in said(finished)


async def test_quit_keeps_the_session_and_the_return_says_where_it_stood(
    make_services: ServicesFactory,
) -> None:
    services = await make_services()
    chat = await start_top_installation(services)
    await chat.say("alcl90abcdef")
    bye = await chat.say("quit")
    assert chat.closed and "progress is saved" in said(bye)
    back = await chat.say("G-240W-F")
    assert "Welcome back" in said(back)
    # The answer given on return is not lost: it fills the pending question.
    assert question(back).needs == "ethernet_port"


async def test_a_repeated_message_id_runs_nothing_twice(make_services: ServicesFactory) -> None:
    services = await make_services()
    chat = await start_top_installation(services)
    first = await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2", message_id="evt-1")
    calls = len(await services.audit.audit_rows())
    again = await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2", message_id="evt-1")
    assert again == first
    assert len(await services.audit.audit_rows()) == calls
    assert question(await chat.say("status")).needs == "ssid"


async def test_a_session_keeps_the_plan_it_started_with(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    plans_dir = tmp_path / "plans"
    shutil.copytree(PLANS_DIR, plans_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    services = await make_services(plans_dir=plans_dir)
    await start_top_installation(services)

    plan = json.loads((plans_dir / "installation.json").read_text())
    plan["steps"][1]["task"] = "Activate the ONT (new wording)"
    (plans_dir / "installation.json").write_text(json.dumps(plan))
    restarted = await make_services(plans_dir=plans_dir)

    resumed = await MemoryBridge(restarted.orchestrator, "AB1234").start()
    assert "new wording" not in said(resumed)
    other = MemoryBridge(restarted.orchestrator, "CD5678")
    await other.start("CD5678")
    await other.say("no")
    started = await other.say("ORD-2002")
    assert "new wording" in said(started)


async def test_a_store_failure_gets_a_plain_apology_not_an_exception(
    make_services: ServicesFactory,
) -> None:
    services = await make_services()
    chat = await start_top_installation(services)
    await services.store.aclose()  # the session store goes away mid-conversation
    replies = await chat.say("ALCL90ABCDEF")
    assert len(replies) == 1 and "Nothing you entered was lost" in replies[0].text


async def test_a_store_server_out_of_reach_is_said_to_be_briefly_unavailable(
    make_services: ServicesFactory,
) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    services = await make_services(store=nobody, secret_key=Fernet.generate_key().decode())
    replies = await MemoryBridge(services.orchestrator, "AB1234").start()
    assert [reply.text for reply in replies] == [UNAVAILABLE]


async def test_a_repeated_message_id_after_a_restart_gets_the_same_replies(
    make_services: ServicesFactory,
) -> None:
    first = await make_services()
    chat = await start_top_installation(first)
    answer = await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2", message_id="evt-9")
    calls = len(await first.audit.audit_rows())
    await first.aclose()

    second = await make_services()
    again = await MemoryBridge(second.orchestrator, "AB1234").say(
        "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2", message_id="evt-9"
    )
    assert again == answer
    assert len(await second.audit.audit_rows()) == calls


async def test_a_session_saved_with_its_plan_inside_still_resumes(
    make_services: ServicesFactory,
) -> None:
    """Sessions saved before plan snapshots moved beside them carried the plan as text."""
    first = await make_services()
    chat = await start_top_installation(first)
    asked = question(await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2"))
    key = chat.key.as_str()
    await first.aclose()
    path = first.settings.data_dir / "sessions.db"
    with closing(sqlite3.connect(path)) as db, db:
        (data,) = db.execute("SELECT data FROM sessions WHERE key = ?", (key,)).fetchone()
        old = json.loads(data)
        (old["plan"],) = db.execute(
            "SELECT data FROM plan_snapshots WHERE digest = ?", (old["plan_digest"],)
        ).fetchone()
        db.execute("DELETE FROM plan_snapshots")
        db.execute("UPDATE sessions SET data = ? WHERE key = ?", (json.dumps(old), key))

    second = await make_services()
    resumed = await MemoryBridge(second.orchestrator, "AB1234").start()
    assert "step 4 of 7" in said(resumed) and question(resumed).text == asked.text
    finished = await MemoryBridge(second.orchestrator, "AB1234").say("ssid=HomeNet")
    assert question(finished).needs == "wifi_password"
