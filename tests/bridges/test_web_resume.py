"""The web chat's resume position against the real server: a notice lost with a connection
comes again on the next hello, and only one the page has not seen.

Notices here are idle reminders (due after a second). A second page of the same
technician (another device) witnesses that each one was pushed; the first page's
connection drops without reading it. Every frame is checked against the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.bridges.server import Server, running
from tests.bridges.test_web_chat import QUIET, Page, open_page, sign_in
from tests.redis_server import delete_prefix, new_prefix, redis_url

__all__ = ["open_page"]  # the fixture

REMINDERS = {**QUIET, "TECHASSIST_REMINDER_AFTER": "1", "TECHASSIST_REMINDER_INTERVAL": "0.2"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running(tmp_path, **REMINDERS) as srv:
        yield srv


async def hello(page: Page, resume: str | None, fresh: bool | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "hello", "v": 2, "resume": resume}
    if fresh is not None:
        frame["fresh"] = fresh
    await page.send(frame)
    welcome = await page.recv()
    assert welcome["type"] == "welcome"
    return welcome


async def next_notice(page: Page) -> dict[str, Any]:
    frame = await page.recv()
    assert frame["type"] == "notice", frame
    return frame


async def sent_again(page: Page) -> set[str]:
    """The ids of the notices sent before the answer to the page's own next message.

    A reminder may come that the page has not seen (the technician was idle a
    second again, after an earlier check), never one it has.
    """
    message_id = page.next_id()
    await page.send({"type": "action", "id": message_id, "value": "status"})
    ids = set()
    while (frame := await page.recv())["type"] == "notice":
        ids.add(frame["id"])
    assert frame["type"] == "reply" and frame["ack"] == message_id
    assert "Step 2 of 7" in "\n".join(r["text"] for r in frame["replies"])
    return ids


async def lose_a_notice(server: Server, tmp_path: Path, open_page: Any) -> tuple[str, Any, Any]:
    """A technician mid-order sees one reminder, speaks, then the next reminder is pushed to
    a page whose connection dies before it reads it: (cookie, the reminder seen, the lost one).
    """
    cookie = sign_in(server, tmp_path)
    phone = await open_page(server, cookie)
    await hello(phone, None)
    await phone.recv()  # the greeting
    await phone.tap("yes")  # mid-order; idle from here
    seen = await next_notice(phone)
    assert "Still on ORD-1003?" in seen["text"]
    tablet = await open_page(server, cookie)  # the same technician on another device
    await hello(tablet, seen["id"])
    await phone.tap("status")  # back, then idle again
    lost = await next_notice(tablet)  # pushed to both pages...
    await phone.ws.close()  # ...and the phone never reads it
    await tablet.ws.close()
    assert lost["id"] != seen["id"] and lost["kind"] == "reminder"
    return cookie, seen, lost


async def test_a_notice_lost_with_the_connection_comes_again_after_the_last_one_seen(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    cookie, seen, lost = await lose_a_notice(server, tmp_path, open_page)

    back = await open_page(server, cookie)
    welcome = await hello(back, seen["id"])
    assert welcome["resumed"] is True
    again = await next_notice(back)
    assert again == lost  # the same id, text and time: the page shows it once
    assert not await sent_again(back) & {seen["id"], lost["id"]}
    await back.ws.close()

    # A page that saw it does not get it again.
    later = await open_page(server, cookie)
    assert (await hello(later, lost["id"]))["resumed"] is True
    assert not await sent_again(later) & {seen["id"], lost["id"]}


async def test_a_reloaded_page_gets_what_it_lost_then_where_things_stand(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    cookie, seen, lost = await lose_a_notice(server, tmp_path, open_page)

    reloaded = await open_page(server, cookie)  # an empty page that kept its last notice id
    assert (await hello(reloaded, seen["id"], fresh=True))["resumed"] is False
    assert (await next_notice(reloaded))["id"] == lost["id"]
    greeting = await reloaded.recv()
    assert greeting["type"] == "reply" and greeting["ack"] is None
    assert greeting["where"]["order_id"] == "ORD-1003"


async def test_without_a_notice_it_knows_a_page_gets_those_since_the_technician_spoke(
    server: Server, tmp_path: Path, open_page: Any
) -> None:
    cookie, seen, lost = await lose_a_notice(server, tmp_path, open_page)

    # A reply's id, or an id of nothing here: the lost reminder came after the last turn.
    for resume in ("s-c-whatever", "n-0000000000000000"):
        page = await open_page(server, cookie)
        await hello(page, resume)
        assert (await next_notice(page))["id"] == lost["id"]
        await page.ws.close()
    # Once the technician spoke again, a reminder from before is not sent again.
    page = await open_page(server, cookie)
    await hello(page, "n-0000000000000000")
    assert lost["id"] in await sent_again(page)  # sent before this page's own message
    await page.ws.close()
    page = await open_page(server, cookie)
    await hello(page, "n-0000000000000000")
    assert not await sent_again(page) & {seen["id"], lost["id"]}


@pytest.mark.scale  # two real server processes, run by `make test-scale`
async def test_a_page_that_comes_back_on_another_instance_gets_what_it_lost(
    tmp_path: Path, open_page: Any
) -> None:
    url, prefix = redis_url(), new_prefix()
    shared = {
        **REMINDERS,
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
    }
    try:
        with running(tmp_path, **shared) as one, running(tmp_path, **shared) as two:
            cookie, seen, lost = await lose_a_notice(one, tmp_path, open_page)
            back = await open_page(two, cookie)  # the phone's next connection lands elsewhere
            assert (await hello(back, seen["id"]))["resumed"] is True
            assert await next_notice(back) == lost
            assert lost["id"] not in await sent_again(back)
    finally:
        delete_prefix(url, prefix)
