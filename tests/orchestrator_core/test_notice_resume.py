"""A page that lost pushed notices with its connection gets them again, and only them."""

from __future__ import annotations

import time

from bot.wiring import Services
from orchestrator_core.orchestrator import MAX_DELIVERED
from tests.orchestrator_core.test_notices import Instance, instance

__all__ = ["instance"]  # the fixture: the same store for two instances, on every backend
from tests.scenarios.test_installation import start_top_installation


async def test_a_page_gets_again_what_was_pushed_after_the_last_notice_it_saw(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    core = services.orchestrator
    for text in ("first", "second", "third"):
        await core.notify(chat.key, text, kind="answer")
        await core.take_notices(chat.key)  # pushed, one by one
    first, second, third = (await core.resume_notices(chat.key, None))[0]
    assert [first.text, second.text, third.text] == ["first", "second", "third"]

    again, taken = await core.resume_notices(chat.key, first.id)
    assert [n.text for n in again] == ["second", "third"] and taken == []
    assert await core.resume_notices(chat.key, third.id) == ([], [])
    # Asking again changes nothing: a page may reconnect many times.
    assert [n.id for n in (await core.resume_notices(chat.key, second.id))[0]] == [third.id]


async def test_the_outbox_comes_after_what_is_sent_again_and_is_taken_once(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    core = services.orchestrator
    await core.notify(chat.key, "pushed")
    [pushed] = await core.take_notices(chat.key)
    await core.notify(chat.key, "waiting")
    await core.notify(chat.key, "pushed")  # same text, another notice

    looked = await core.resume_notices(chat.key, pushed.id, take=False)
    assert looked == ([], [])  # only looked: the outbox stays
    again, taken = await core.resume_notices(chat.key, pushed.id)
    assert again == [] and [n.text for n in taken] == ["waiting", "pushed"]
    # Taken ones are delivered now: a page that saw only the first gets them again.
    assert [n.id for n in (await core.resume_notices(chat.key, pushed.id))[0]] == [
        n.id for n in taken
    ]
    assert await core.take_notices(chat.key) == []


async def test_with_a_position_it_does_not_know_a_page_gets_what_came_since_the_technician_spoke(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    core = services.orchestrator
    await core.notify(chat.key, "before")
    await core.take_notices(chat.key)
    await chat.say("status")  # the technician spoke after seeing it
    await core.notify(chat.key, "after")
    [after] = await core.take_notices(chat.key)
    for position in (None, "s-c-1", "n-0000000000000000"):
        again, _ = await core.resume_notices(chat.key, position)
        assert again == [after], position


async def test_a_reminder_is_not_sent_again_once_the_technician_spoke(services: Services) -> None:
    chat = await start_top_installation(services)
    core = services.orchestrator
    await core.notify(chat.key, "seen")
    [seen] = await core.take_notices(chat.key)
    assert await core.fire_reminders(now=time.time() + 10 * 86_400.0) == 1
    [reminder] = await core.take_notices(chat.key)
    assert (await core.resume_notices(chat.key, seen.id))[0] == [reminder]
    await chat.say("status")
    await core.notify(chat.key, "answer", kind="answer")
    [answer] = await core.take_notices(chat.key)
    assert (await core.resume_notices(chat.key, seen.id))[0] == [answer]


async def test_notices_put_back_are_not_delivered(services: Services) -> None:
    chat = await start_top_installation(services)
    core = services.orchestrator
    await core.notify(chat.key, "one")
    [one] = await core.take_notices(chat.key)
    await core.notify(chat.key, "two")
    two = await core.take_notices(chat.key)
    await core.keep_notices(chat.key, two)  # the socket closed before it went out
    again, taken = await core.resume_notices(chat.key, one.id)
    assert again == [] and taken == two  # once, from the outbox


async def test_only_the_last_pushed_are_kept_on_every_store(instance: Instance) -> None:
    one, two = await instance(), await instance()
    chat = await start_top_installation(one)
    for i in range(MAX_DELIVERED + 5):
        await one.orchestrator.notify(chat.key, f"notice {i}")
        await one.orchestrator.take_notices(chat.key)
    # Another instance on the same store reads them back.
    kept, _ = await two.orchestrator.resume_notices(chat.key, None)
    assert [n.text for n in kept] == [f"notice {i}" for i in range(5, MAX_DELIVERED + 5)]
    again, _ = await two.orchestrator.resume_notices(chat.key, kept[-2].id)
    assert again == [kept[-1]]
