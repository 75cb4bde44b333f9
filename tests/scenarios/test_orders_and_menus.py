"""Identifying, picking orders, and what happens after an order."""

from __future__ import annotations

from bot.wiring import Services
from bridges.memory import MemoryBridge
from tests.scenarios.helpers import question, said
from tests.scenarios.test_installation import start_top_installation


async def finish_top_installation(chat: MemoryBridge) -> None:
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await chat.say("skip")
    done = await chat.say("yes")
    assert "is closed" in said(done)


async def test_an_unknown_cuid_is_refused_and_asked_again(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "someone")
    await chat.start()
    refused = await chat.say("ZZ9999")
    assert "couldn't identify you with that CUID" in said(refused)
    assert "ZZ9999" not in said(refused)
    assert "Alice" not in said(refused) and "ORD-" not in said(refused)
    assert question(refused).needs == "cuid"
    assert "Hi Alice" in said(await chat.say("ab1234"))


async def test_unknown_and_malformed_cuids_get_the_same_answer(services: Services) -> None:
    """Nothing in the answer tells a CUID that exists from one that cannot."""
    answers = []
    for n, text in enumerate(("ZZ9999", "!!", "A" * 40, "zz0000", "ＡＢ１２３４")):
        chat = MemoryBridge(services.orchestrator, f"someone-{n}")
        await chat.start()
        answers.append(said(await chat.say(text)))
    assert len(set(answers)) == 1, answers


async def test_a_technician_with_no_open_orders_is_offered_help_or_the_end(
    services: Services,
) -> None:
    chat = MemoryBridge(services.orchestrator, "EF9012")
    replies = await chat.start("EF9012")
    assert "no open orders" in said(replies)
    assert question(replies).choices == ["orders", "help", "end"]
    ended = await chat.say("end")
    assert "Goodbye" in said(ended) and chat.closed


async def test_declining_lists_the_others_and_one_can_be_picked(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start("AB1234")
    listed = await chat.say("no")
    pick = question(listed)
    assert pick.text.splitlines()[1].startswith("1. ORD-1005")  # ORD-1004 has no plan
    assert pick.choices[-1] == "none"
    started = await chat.say("1")
    assert "Starting ORD-1005" in said(started)


async def test_an_order_type_without_a_plan_is_explained_and_the_others_offered(
    services: Services,
) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    opened = await chat.start("AB1234")
    assert "ORD-1004 (relocation) is waiting for a plan" in said(opened)
    assert "relocation" not in question(opened).text
    await chat.say("no")
    refused = await chat.say("ORD-1004")
    assert "waiting for a plan" in said(refused)
    assert "ORD-1004" not in question(refused).text
    order = await services.workorders.get_order("ORD-1004")
    assert order is not None and order.status == "assigned"


async def test_picking_none_leaves_a_menu(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start("AB1234")
    await chat.say("no")
    menu = await chat.say("none")
    assert question(menu).choices == ["orders", "help", "end"]
    again = await chat.say("orders")
    assert "ORD-1003" in question(again).text


async def test_next_order_clears_the_values_and_keeps_the_order_list(services: Services) -> None:
    chat = await start_top_installation(services)
    await finish_top_installation(chat)
    before = await chat.say("status")
    assert "Open orders: 6" in said(before) and "Waiting for a plan: ORD-1004" in said(before)
    proposal = await chat.say("next")
    assert "ORD-1005" in question(proposal).text
    status = await chat.say("status")
    assert "Open orders: 6" in said(status)
    assert "ORD-1003" not in question(proposal).text
    session = await services.sessions.get_session_data(chat.key)
    assert session is not None
    assert session.values == {} and session.plan is None and session.cuid == "AB1234"
    assert session.completed == ["ORD-1003"]


async def test_help_is_passed_to_a_human_then_the_end_summarises(services: Services) -> None:
    chat = await start_top_installation(services)
    await finish_top_installation(chat)
    ask = await chat.say("help")
    assert question(ask).needs == "help"
    ack = await chat.say("The customer wants a second access point")
    assert "passed that to a human" in said(ack)
    assert question(ack).choices == ["next", "help", "end"]
    end = await chat.say("end")
    assert "Orders completed this session: ORD-1003" in said(end)
    assert chat.closed
    reasons = [e["reason"] for e in await services.workorders.escalations("AB1234")]
    assert reasons == ["The customer wants a second access point"]


async def test_cancel_asks_for_a_reason_and_returns_the_order_to_the_queue(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    asked = await chat.say("cancel")
    assert question(asked).needs == "reason"
    left = await chat.say("Customer not home")
    assert "back in your queue" in said(left)
    assert "ORD-1003" not in question(left).text
    order = await services.workorders.get_order("ORD-1003")
    assert order is not None and order.status == "assigned"


async def test_help_lists_what_can_be_said(services: Services) -> None:
    chat = await start_top_installation(services)
    replies = await chat.say("help")
    assert "status" in said(replies) and "cancel" in said(replies)
    assert question(replies).needs == "fsan"
