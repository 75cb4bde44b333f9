"""A message nobody asked for reaches the technician with their next turn, first and once."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.fernet import Fernet

from bot.wiring import Services
from bridges.memory import MemoryBridge
from tests.conftest import ServicesFactory
from tests.redis_server import delete_prefix, new_prefix, redis_url
from tests.scenarios.helpers import question, said
from tests.scenarios.test_installation import TOP, start_top_installation

LATER = 10 * 86_400.0


async def test_a_dispatchers_answer_comes_first_in_the_next_turn_and_only_once(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    await services.orchestrator.notify(
        "AB1234", "Dispatch: the ONT is the white box by the door.", kind="answer"
    )
    replies = await chat.say("alcl90abcdef")
    assert replies[0].text == "Dispatch: the ONT is the white box by the door."
    assert replies[0].data is not None and replies[0].data["notice"] == "answer"
    assert question(replies).needs == "model"  # the turn itself went on as usual
    again = await chat.say("g-240w-f")
    assert "white box" not in said(again)
    assert question(again).needs == "ethernet_port"


async def test_several_notices_come_in_the_order_they_were_sent(services: Services) -> None:
    chat = await start_top_installation(services)
    for text in ("one", "two", "three"):
        await services.orchestrator.notify(chat.key, text)
    replies = await chat.say("status")
    assert [r.text for r in replies[:3]] == ["one", "two", "three"]


async def test_a_reminder_is_not_shown_to_a_technician_who_is_back(services: Services) -> None:
    chat = await start_top_installation(services)
    assert await services.orchestrator.fire_reminders(time.time() + LATER) == 1
    replies = await chat.say("alcl90abcdef")
    assert "Still on" not in said(replies)
    assert question(replies).needs == "model"
    assert await services.orchestrator.take_notices(chat.key) == []


async def test_a_message_sent_again_gets_the_same_notice_and_no_other(services: Services) -> None:
    chat = await start_top_installation(services)
    await services.orchestrator.notify(chat.key, "Use port 2", kind="answer")
    first = await chat.say("alcl90abcdef", message_id="m-1")
    await services.orchestrator.notify(chat.key, "Later news")
    again = await chat.say("alcl90abcdef", message_id="m-1")  # the reply was lost: sent again
    assert again == first and first[0].text == "Use port 2"
    assert (await chat.say("status"))[0].text == "Later news"


async def test_a_notice_waits_while_the_technician_is_away_and_greets_their_return(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    await chat.say("quit")
    await services.orchestrator.notify("AB1234", "Order ORD-1003 is handed back to you.")
    back = await MemoryBridge(services.orchestrator, "AB1234").start()
    assert back[0].text == "Order ORD-1003 is handed back to you."
    assert "Welcome back" in said(back)


async def test_a_notice_sent_on_one_instance_reaches_a_turn_on_another(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    url, prefix = redis_url(), new_prefix()
    key = Fernet.generate_key().decode()
    try:
        one = await make_services(tmp_path, store=url, redis_prefix=prefix, secret_key=key)
        two = await make_services(tmp_path, store=url, redis_prefix=prefix, secret_key=key)
        chat = await start_top_installation(one)
        assert await two.orchestrator.notify("AB1234", f"About {TOP}: go ahead") == chat.key
        replies = await chat.say("alcl90abcdef")
        assert replies[0].text == f"About {TOP}: go ahead"
    finally:
        delete_prefix(url, prefix)
