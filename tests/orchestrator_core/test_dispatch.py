"""A dispatcher works the escalations queue; the technician hears the answer and resumes.

Whole conversations through the in-memory bridge on a real TechAssist: the work
orders on SQLite, and again on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.dispatch import DispatchError, Escalation
from orchestrator_core.params import MASK
from orchestrator_core.secrets import FernetSecrets
from tests.conftest import ServicesFactory
from tests.orchestrator_core.workorders.backends import (
    _create_database,
    _drop_database,
    admin_url,
    empty_postgres_url,
    unavailable,
)
from tests.redis_server import delete_prefix, new_prefix, redis_url
from tests.scenarios.helpers import question, said

__all__ = ["empty_postgres_url"]

PASSWORD = "harbour-lantern-42"
ORDER = "ORD-1003"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def backend(
    request: pytest.FixtureRequest, make_services: ServicesFactory
) -> AsyncIterator[Services]:
    """TechAssist with everything on SQLite; or its work orders on a PostgreSQL database
    of its own; or its sessions on Redis, under a key prefix of its own."""
    if request.param == "sqlite":
        yield await make_services()
        return
    if request.param == "redis":
        url, prefix = redis_url(), new_prefix()
        key = FernetSecrets.new_key()
        try:
            yield await make_services(store=url, redis_prefix=prefix, secret_key=key)
        finally:
            delete_prefix(url, prefix)
        return
    import psycopg

    try:
        url = _create_database()
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {admin_url()}: {str(exc).strip().splitlines()[0]}")
        raise AssertionError("unreachable") from None
    services = await make_services(database_url=url)
    try:
        yield services
    finally:
        await services.aclose()
        _drop_database(url)


async def escalated_at_wifi(services: Services) -> tuple[MemoryBridge, Escalation]:
    """AB1234 starts ORD-1003, gives the first values and the Wi-Fi password ahead of its
    step, and escalates at step 4 of 7."""
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("yes")
    reply = await chat.say(
        f"fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2 wifi_password={PASSWORD}"
    )
    assert question(reply).needs == "ssid"
    gone = await chat.say("escalate")
    assert f"I've escalated {ORDER}" in said(gone)
    [escalation] = await services.dispatch.queue("open")
    return chat, escalation


async def stored_session(services: Services, chat: MemoryBridge) -> str:
    """The session as its store keeps it."""
    stored = await services.store.load(chat.key.as_str())
    assert stored is not None
    return stored.data


async def test_an_escalation_reaches_the_queue_with_its_step_words_and_masked_values(
    backend: Services,
) -> None:
    services = backend
    chat, escalation = await escalated_at_wifi(services)
    assert escalation.status == "open" and escalation.order_id == ORDER
    assert escalation.cuid == "AB1234" and escalation.kind == "order"
    assert (escalation.step, escalation.of, escalation.step_id) == (4, 7, "wifi")
    assert "wi-fi" in escalation.words.lower()
    assert escalation.params["fsan"] == "ALCL90ABCDEF"
    assert escalation.params["wifi_password"] == MASK
    assert escalation.session_key == chat.key.as_str()
    assert PASSWORD not in json.dumps(escalation.as_dict())
    # The parked order keeps the password, sealed, in the stored session.
    row = await stored_session(services, chat)
    assert PASSWORD not in row
    parked = json.loads(row)["parked"][ORDER]
    assert "wifi_password" in parked["sealed"] and parked["step_index"] == 3
    assert await services.dispatch.get(escalation.id.lower()) == escalation


async def test_take_answer_and_hand_back_resume_the_order_at_the_same_step(
    backend: Services,
) -> None:
    services = backend
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    taken = await dispatch.take(escalation.id, "ana")
    assert taken.status == "taken" and taken.operator == "ana"
    answered = await dispatch.answer(escalation.id, "ana", "The customer's router is upstairs.")
    assert answered.status == "answered" and answered.answer is not None
    assert answered.sent_to == chat.key.as_str()

    # The answer comes first in the technician's next turn.
    menu = await chat.say("status")
    assert menu[0].text == (
        f"From the dispatcher (ana) about {ORDER}: The customer's router is upstairs."
    )
    assert menu[0].data is not None and menu[0].data["notice"] == "answer"

    back = await dispatch.hand_back(escalation.id, "ana")
    assert back.status == "closed" and back.outcome == "handed_back"
    order = await services.workorders.get_order(ORDER)
    assert order is not None and order.status == "in_progress"

    offer = await chat.say("next")
    assert "is back with you from the dispatcher" in said(offer)
    assert question(offer).text.startswith(f"{ORDER} is back with you from the dispatcher")
    assert "resume at step 4" in question(offer).text
    resumed = await chat.say("yes")
    assert f"Resuming {ORDER} at step 4 of 7" in said(resumed)
    # The values are kept: only the Wi-Fi name is asked, not the password again.
    assert question(resumed).needs == "ssid"
    online = await chat.say("HomeNet")
    assert "Speed test passed" in said(online)
    done = await chat.say("yes")
    assert f"Order {ORDER} is closed" in said(done)
    order = await services.workorders.get_order(ORDER)
    assert order is not None and order.status == "completed"
    assert PASSWORD not in str(await services.audit.audit_rows())
    assert ORDER not in json.loads(await stored_session(services, chat))["parked"]


async def test_a_hand_back_mid_another_order_is_offered_when_that_order_ends(
    services: Services,
) -> None:
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    await chat.say("next")
    started = await chat.say("yes")
    assert "Starting ORD-1005" in said(started)
    await dispatch.take(escalation.id, "ana")
    await dispatch.hand_back(escalation.id, "ana")

    busy = await chat.say("fsan=ALCL1A2B3C4D model=G-010G-P ethernet_port=1 ssid=Casa")
    assert "is back with you from the dispatcher" in said(busy)  # the notice, told at once
    assert question(busy).needs == "wifi_password"  # but the order at hand goes on
    await chat.say("blue-kettle-on-tuesday")
    ended = await chat.say("yes")
    assert "Order ORD-1005 is closed" in said(ended)
    offer = question(ended)
    assert offer.text.startswith(f"{ORDER} is back with you") and offer.choices == ["yes", "no"]
    resumed = await chat.say("yes")
    assert question(resumed).needs == "ssid"


async def test_a_technician_who_comes_back_is_offered_the_handed_back_order_at_once(
    services: Services,
) -> None:
    chat, escalation = await escalated_at_wifi(services)
    await chat.say("quit")
    await services.dispatch.take(escalation.id, "ana")
    await services.dispatch.hand_back(escalation.id, "ana")
    again = MemoryBridge(services.orchestrator, "AB1234")
    opened = await again.start()  # a new connection, before a word is typed
    assert question(opened).text.startswith(f"{ORDER} is back with you from the dispatcher")
    assert question(await again.say("yes")).needs == "ssid"


async def test_a_yes_to_the_hand_back_notice_resumes_at_once(services: Services) -> None:
    chat, escalation = await escalated_at_wifi(services)
    await services.dispatch.take(escalation.id, "ana")
    await services.dispatch.hand_back(escalation.id, "ana")
    resumed = await chat.say("yes")  # the technician answers the notice, on the menu
    assert f"{ORDER} is back with you from the dispatcher (ana)" in said(resumed)
    assert f"Resuming {ORDER} at step 4 of 7" in said(resumed)
    assert question(resumed).needs == "ssid"


async def test_a_handed_back_order_closed_meanwhile_is_explained_once(
    services: Services,
) -> None:
    chat, escalation = await escalated_at_wifi(services)
    await services.dispatch.take(escalation.id, "ana")
    await services.dispatch.hand_back(escalation.id, "ana")
    await services.workorders.set_order_status(ORDER, "completed", "closed by the office")
    refused = await chat.say("yes")
    assert f"I couldn't resume {ORDER}" in said(refused)
    assert "is back with you" not in question(refused).text
    assert "is back with you" not in question(await chat.say("status")).text


async def test_declining_a_hand_back_keeps_the_order_to_pick_later_at_its_step(
    services: Services,
) -> None:
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    await dispatch.take(escalation.id, "ana")
    await dispatch.hand_back(escalation.id, "ana")
    await chat.say("next")
    declined = await chat.say("no")
    assert f"{ORDER} stays with you" in said(declined)
    assert ORDER in question(declined).text  # proposed again among the open orders
    resumed = await chat.say("yes")
    assert f"Resuming {ORDER} at step 4 of 7" in said(resumed)
    assert question(resumed).needs == "ssid"


async def test_cancel_cancels_the_order_with_the_reason_and_tells_the_technician(
    backend: Services,
) -> None:
    services = backend
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    await dispatch.take(escalation.id, "ana")
    with pytest.raises(DispatchError, match="empty"):
        await dispatch.cancel(escalation.id, "ana", "  ")
    cancelled = await dispatch.cancel(escalation.id, "ana", "Customer moved out")
    assert cancelled.status == "closed" and cancelled.outcome == "cancelled"
    order = await services.workorders.get_order(ORDER)
    assert order is not None and order.status == "cancelled"
    assert "Customer moved out" in order.notes
    told = await chat.say("status")
    assert f"{ORDER} was cancelled by the dispatcher (ana): Customer moved out" in said(told)
    assert json.loads(await stored_session(services, chat))["parked"] == {}
    with pytest.raises(DispatchError, match="already closed"):
        await dispatch.hand_back(escalation.id, "ana")


async def test_of_two_operators_taking_one_escalation_at_once_exactly_one_wins(
    backend: Services,
) -> None:
    dispatch = backend.dispatch
    _, escalation = await escalated_at_wifi(backend)
    results = await asyncio.gather(
        dispatch.take(escalation.id, "ana"),
        dispatch.take(escalation.id, "bob"),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Escalation)]
    lost = [r for r in results if isinstance(r, DispatchError)]
    assert len(won) == 1 and len(lost) == 1
    assert "already taken by" in str(lost[0])
    assert (await dispatch.get(escalation.id)).operator == won[0].operator


async def test_refused_actions_say_why_and_change_nothing(services: Services) -> None:
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    with pytest.raises(DispatchError, match="not taken yet"):
        await dispatch.answer(escalation.id, "ana", "hello")
    with pytest.raises(DispatchError, match="There is no escalation ESC-9999"):
        await dispatch.take("ESC-9999", "ana")
    with pytest.raises(DispatchError, match="There is no escalation"):
        await dispatch.take("nonsense", "ana")
    with pytest.raises(DispatchError, match="Unknown status"):
        await dispatch.queue("lost")
    await dispatch.take(escalation.id, "ana")
    with pytest.raises(DispatchError, match="taken by ana; only they can answer"):
        await dispatch.answer(escalation.id, "bob", "hello")
    with pytest.raises(DispatchError, match="empty"):
        await dispatch.answer(escalation.id, "ana", "   ")
    with pytest.raises(DispatchError, match="limit"):
        await dispatch.answer(escalation.id, "ana", "x" * 5000)
    assert await dispatch.get(escalation.id) == (await dispatch.queue("taken"))[0]
    assert (await dispatch.get(escalation.id)).answer is None
    # Nothing reached the technician.
    assert "hello" not in said(await chat.say("status"))


async def test_closing_lets_the_parked_order_and_its_password_go(services: Services) -> None:
    dispatch = services.dispatch
    chat, escalation = await escalated_at_wifi(services)
    await dispatch.take(escalation.id, "ana")
    closed = await dispatch.close(escalation.id, "ana")
    assert closed.status == "closed" and closed.outcome == "closed"
    assert json.loads(await stored_session(services, chat))["parked"] == {}
    assert [e.id for e in await dispatch.queue("closed")] == [escalation.id]
    assert await dispatch.queue("open") == []


async def test_words_said_with_escalate_reach_the_dispatcher(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("yes")
    gone = await chat.say("escalate  the cabinet   is locked")
    assert f"I've escalated {ORDER}" in said(gone)
    [escalation] = await services.dispatch.queue()
    assert escalation.words == "the cabinet is locked" and escalation.step == 2


async def test_a_help_request_is_queued_with_the_technicians_words(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("no")
    await chat.say("none")
    await chat.say("help")
    await chat.say("The cabinet on Elm Street is locked")
    [escalation] = await services.dispatch.queue()
    assert escalation.kind == "help" and escalation.order_id is None
    assert escalation.words == "The cabinet on Elm Street is locked"
    await services.dispatch.take(escalation.id, "ana")
    with pytest.raises(DispatchError, match="no order to hand back"):
        await services.dispatch.hand_back(escalation.id, "ana")


async def test_subscribers_hear_of_each_new_escalation(services: Services) -> None:
    heard: asyncio.Queue[Escalation] = asyncio.Queue()

    async def listener(escalation: Escalation) -> None:
        await heard.put(escalation)

    async def broken(escalation: Escalation) -> None:
        raise RuntimeError("a subscriber that fails breaks nothing")

    services.dispatch.subscribe(broken)
    services.dispatch.subscribe(listener)
    _, escalation = await escalated_at_wifi(services)
    announced = await asyncio.wait_for(heard.get(), 10)
    assert announced.id == escalation.id and announced.params["wifi_password"] == MASK


async def test_an_orders_audit_shows_its_tool_calls_with_the_password_masked(
    backend: Services,
) -> None:
    services = backend
    chat, escalation = await escalated_at_wifi(services)
    await services.dispatch.take(escalation.id, "ana")
    await services.dispatch.hand_back(escalation.id, "ana")
    await chat.say("next")
    await chat.say("yes")
    await chat.say("HomeNet")
    trail = await services.dispatch.audit(ORDER.lower())
    tools = [entry.tool for entry in trail]
    assert tools[:3] == ["start_order", "get_order_details", "activate_ont"]
    assert "escalate" in tools and "configure_wifi" in tools
    wifi = next(entry for entry in trail if entry.tool == "configure_wifi")
    assert wifi.ok and wifi.args["wifi_password"] != PASSWORD and wifi.duration_ms >= 0
    assert PASSWORD not in json.dumps([entry.as_dict() for entry in trail])
    with pytest.raises(DispatchError, match="order id"):
        await services.dispatch.audit("  ")


async def test_live_sessions_list_the_technician_at_their_step(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("yes")
    [live] = await services.dispatch.live_sessions()
    assert (live.cuid, live.name, live.bridge) == ("AB1234", "Alice Brown", "memory")
    assert (live.order_id, live.step, live.of, live.phase) == (ORDER, 2, 7, "collect")
    assert live.last_tool == "get_order_details: ok" and live.outbox == 0


async def test_an_escalations_table_from_before_is_upgraded_and_its_rows_stay_readable(
    tmp_path: Path, make_services: ServicesFactory
) -> None:
    path = tmp_path / "workorders.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE escalations (id INTEGER PRIMARY KEY AUTOINCREMENT, cuid TEXT NOT NULL"
            " COLLATE NOCASE, order_id TEXT COLLATE NOCASE, kind TEXT NOT NULL,"
            " reason TEXT NOT NULL, created_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO escalations (cuid, order_id, kind, reason, created_at)"
            " VALUES ('AB1234', 'ORD-1007', 'order', 'old one', '2026-11-30T10:00:00+00:00')"
        )
    services = await make_services(tmp_path)
    [old] = await services.dispatch.queue()
    assert (old.id, old.status, old.words, old.params) == ("ESC-0001", "open", "old one", {})
    assert (await services.dispatch.take("ESC-0001", "ana")).status == "taken"


RENAMED_SECRET = {
    "id": "renamed-secret",
    "title": "Installation with the Wi-Fi key under another name",
    "order_types": ["installation"],
    "parameters": {
        "fsan": {"prompt": "Serial?", "pattern": "^[A-Z]{4}[0-9A-F]{8}$", "normalize": "upper"},
        "model": {"prompt": "Model?", "type": "choice", "choices": ["G-240W-F", "G-010G-P"]},
        "ethernet_port": {"prompt": "Port?", "type": "integer", "min": 1, "max": 4},
        "ssid": {"prompt": "Network name?"},
        "network_key": {"prompt": "Network key?", "min": 8, "sensitive": True},
    },
    "steps": [
        {
            "id": "activate",
            "task": "Activate the ONT",
            "parameters": ["fsan", "model", "ethernet_port"],
            "tool": "activate_ont",
            "inputs": {"order_id": "order.order_id"},
        },
        {
            "id": "wifi",
            "task": "Set up the Wi-Fi",
            "parameters": ["ssid", "network_key"],
            "tool": "configure_wifi",
            "inputs": {"fsan": "fsan", "wifi_password": "network_key"},
        },
    ],
}


async def test_a_sensitive_value_is_masked_in_the_audit_under_any_argument_name(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "plan.json").write_text(json.dumps(RENAMED_SECRET))
    services = await make_services(plans_dir=plans)
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start("AB1234")
    await chat.say("yes")
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await chat.say("ssid=Home")
    done = await chat.say(PASSWORD)
    assert f"Order {ORDER} is closed" in said(done), said(done)
    assert PASSWORD not in str(await services.audit.audit_rows())
    trail = await services.dispatch.audit(ORDER)
    wifi = next(entry for entry in trail if entry.tool == "configure_wifi")
    assert wifi.ok and wifi.args["wifi_password"] != PASSWORD


async def test_a_postgres_database_from_before_keeps_its_escalations_readable(
    empty_postgres_url: str,
) -> None:
    import psycopg

    from orchestrator_core.operators import Operators
    from orchestrator_core.pg.migrate import upgrade
    from orchestrator_core.pg.workorders import PostgresWorkOrders

    url = empty_postgres_url
    await upgrade(url, to=3)  # the schema as the version before the queue left it
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO escalations (cuid_key, cuid, order_id, kind, reason, created_at)"
            " VALUES ('ab1234', 'AB1234', 'ORD-1007', 'order', 'old one', now())"
        )
    applied = await upgrade(url)
    assert "004_dispatch" in applied
    db = await PostgresWorkOrders.open(url, min_size=1, max_size=2)
    try:
        [old] = await db.escalations()
        assert (old["escalation_id"], old["status"], old["params"]) == ("ESC-0001", "open", {})
        taken = await db.move_escalation(
            "ESC-0001", "taken", "ana", allowed=("open",), taker_only=False
        )
        assert taken is not None and taken["operator"] == "ana"
        operators = Operators(db)
        await operators.add("ana", "a long enough password")
        assert await operators.verify("ANA", "a long enough password")
        assert not await operators.verify("ana", "another password")
    finally:
        await db.aclose()


async def test_an_answer_goes_to_the_conversation_the_technician_last_used(
    make_services: ServicesFactory,
) -> None:
    """The technician escalated in one conversation, then spoke in another (the web chat
    on their phone, say): the answer reaches the latter, and the dispatcher is told which."""
    services = await make_services()
    chat, escalation = await escalated_at_wifi(services)
    phone = MemoryBridge(services.orchestrator, "AB1234", bridge="web")
    await phone.say("AB1234")
    await services.dispatch.take(escalation.id, "ana")
    answered = await services.dispatch.answer(escalation.id, "ana", "Use the side door.")
    assert answered.sent_to == phone.key.as_str() != chat.key.as_str()
    assert said(await phone.say("status")).startswith(
        f"From the dispatcher (ana) about {ORDER}: Use the side door."
    )
    assert "Use the side door" not in said(await chat.say("status"))
