"""Messages nobody asked for: notify, take, remind; and the notifiers that carry the hint."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.notices import LocalNotifier, Notice, Notifier
from orchestrator_core.orchestrator import MAX_OUTBOX
from orchestrator_core.pg.notices import PostgresNotifier
from orchestrator_core.pg.sessions import PostgresPool
from orchestrator_core.stores.redis import RedisKeys, RedisNotifier, connect
from orchestrator_core.turns import SessionKey
from tests.conftest import ServicesFactory
from tests.pg_sessions import empty_pool, sessions_url
from tests.redis_server import delete_prefix, new_prefix, redis_url
from tests.scenarios.helpers import question
from tests.scenarios.test_installation import TOP, start_top_installation

#: Seconds a test waits for something another connection sends.
TIMEOUT = 10.0
#: Far enough ahead that any reminder set now is due.
LATER = 10 * 86_400.0

Instance = Callable[[], Awaitable[Services]]


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def instance(
    request: pytest.FixtureRequest, make_services: ServicesFactory, tmp_path: Path
) -> AsyncIterator[Instance]:
    """Builds instances on one store: the same SQLite file, Redis prefix or PostgreSQL database."""
    if request.param == "sqlite":

        async def on_sqlite() -> Services:
            return await make_services(tmp_path)

        yield on_sqlite
        return
    if request.param == "postgres":
        async with empty_pool():
            pass  # no session left by another test
        pg_key = Fernet.generate_key().decode()

        async def on_postgres() -> Services:
            return await make_services(tmp_path, store=sessions_url(), secret_key=pg_key)

        yield on_postgres
        return
    url, prefix = redis_url(), new_prefix()
    key = Fernet.generate_key().decode()

    async def on_redis() -> Services:
        return await make_services(tmp_path, store=url, redis_prefix=prefix, secret_key=key)

    try:
        yield on_redis
    finally:
        delete_prefix(url, prefix)


# ---------------------------------------------------------------------- session keys


def test_a_key_string_reads_back_as_the_same_key() -> None:
    for key in (
        SessionKey("web", "", "", "AB1234"),
        SessionKey("slack", "T1", "C:1%", "U:%3A2"),
        SessionKey("ws", "a%25b", "", "x"),
    ):
        assert SessionKey.from_str(key.as_str()) == key


@pytest.mark.parametrize(
    "text", ["", "web::AB1234", "techassist:web::AB1234", "techassist:web:::", "other:a:b:c:d"]
)
def test_what_is_not_a_key_string_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        SessionKey.from_str(text)


# ---------------------------------------------------------------------- notify and take


async def test_a_notice_to_a_session_is_taken_once(services: Services) -> None:
    chat = await start_top_installation(services)
    went = await services.orchestrator.notify(
        chat.key, "Use port 2", kind="answer", data={"escalation_id": "ESC-0001"}
    )
    assert went == chat.key
    taken = await services.orchestrator.take_notices(chat.key)
    assert [(n.kind, n.text, n.data) for n in taken] == [
        ("answer", "Use port 2", {"escalation_id": "ESC-0001"})
    ]
    assert taken[0].id.startswith("n-") and len(taken[0].id) == 18
    assert abs(taken[0].at - time.time()) < 60
    assert await services.orchestrator.take_notices(chat.key) == []
    # The conversation is where it was.
    assert question(await chat.say("status")).needs == "fsan"


async def test_a_notice_by_session_key_string_reaches_that_session(services: Services) -> None:
    chat = await start_top_installation(services)
    assert await services.orchestrator.notify(chat.key.as_str(), "hello") == chat.key
    assert [n.text for n in await services.orchestrator.take_notices(chat.key)] == ["hello"]


async def test_a_notice_to_a_cuid_goes_to_the_session_the_technician_spoke_in_last(
    services: Services,
) -> None:
    phone = MemoryBridge(services.orchestrator, "phone")
    laptop = MemoryBridge(services.orchestrator, "laptop")
    await phone.say("AB1234")
    await laptop.say("AB1234")
    orchestrator = services.orchestrator
    assert await orchestrator.notify("AB1234", "first") == laptop.key
    await phone.say("status")
    assert await orchestrator.notify("AB1234", "second") == phone.key
    # Taking the laptop's notice saves that session, but the technician spoke on the phone.
    assert [n.text for n in await orchestrator.take_notices(laptop.key)] == ["first"]
    assert await orchestrator.notify("AB1234", "third") == phone.key
    assert [n.text for n in await orchestrator.take_notices(phone.key)] == ["second", "third"]


async def test_a_notice_to_a_cuid_without_a_session_goes_nowhere(services: Services) -> None:
    chat = await start_top_installation(services)
    orchestrator = services.orchestrator
    assert await orchestrator.notify("ZZ9999", "anyone?") is None
    assert await orchestrator.notify(SessionKey("web", "", "", "ZZ9999"), "anyone?") is None
    assert await services.store.scan() != []
    assert [s.key for s in await services.store.scan()] == [chat.key.as_str()]
    assert await orchestrator.take_notices(SessionKey("web", "", "", "ZZ9999")) == []


@pytest.mark.parametrize(
    ("text", "data", "problem"),
    [
        ("   ", None, "needs some text"),
        ("x" * 9000, None, "at most 8192 characters"),
        ("ok", {"when": object()}, "must be JSON"),
    ],
)
async def test_a_notice_that_cannot_be_kept_is_refused_and_changes_nothing(
    services: Services, text: str, data: dict[str, Any] | None, problem: str
) -> None:
    chat = await start_top_installation(services)
    before = await services.store.load(chat.key.as_str())
    with pytest.raises(ValueError, match=problem):
        await services.orchestrator.notify(chat.key, text, data=data)
    assert await services.store.load(chat.key.as_str()) == before


async def test_unreadable_characters_in_a_notice_are_replaced_not_stored(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    await services.orchestrator.notify(chat.key, "half an emoji: \ud83d")
    replies = await chat.say("status")
    assert replies[0].text == "half an emoji: \ufffd"


async def test_a_technician_who_never_comes_back_keeps_only_the_latest_notices(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    for n in range(MAX_OUTBOX + 5):
        await services.orchestrator.notify(chat.key, f"notice {n}")
    taken = await services.orchestrator.take_notices(chat.key)
    assert len(taken) == MAX_OUTBOX
    assert taken[0].text == "notice 5" and taken[-1].text == f"notice {MAX_OUTBOX + 4}"


async def test_notices_a_bridge_could_not_deliver_come_first_next_time(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    orchestrator = services.orchestrator
    await orchestrator.notify(chat.key, "first")
    taken = await orchestrator.take_notices(chat.key)
    await orchestrator.notify(chat.key, "second")
    await orchestrator.keep_notices(chat.key, taken)  # the socket closed before they went out
    await orchestrator.keep_notices(chat.key, taken)  # kept once, however often put back
    replies = await chat.say("status")
    assert [r.text for r in replies[:2]] == ["first", "second"]
    assert "first" not in [r.text for r in replies[2:]]


async def test_two_takers_at_once_share_no_notice(instance: Instance) -> None:
    one, two = await instance(), await instance()
    chat = await start_top_installation(one)
    for text in ("a", "b", "c"):
        await one.orchestrator.notify(chat.key, text)
    taken = await asyncio.gather(
        one.orchestrator.take_notices(chat.key), two.orchestrator.take_notices(chat.key)
    )
    assert sorted(len(t) for t in taken) == [0, 3]
    assert [n.text for n in taken[0] + taken[1]] == ["a", "b", "c"]


async def test_notices_from_two_instances_at_once_are_all_kept(instance: Instance) -> None:
    one, two = await instance(), await instance()
    chat = await start_top_installation(one)
    await asyncio.gather(
        one.orchestrator.notify(chat.key, "from one"), two.orchestrator.notify(chat.key, "from two")
    )
    texts = {n.text for n in await two.orchestrator.take_notices(chat.key)}
    assert texts == {"from one", "from two"}


async def test_notify_tells_the_notifier_which_session(services: Services) -> None:
    chat = await start_top_installation(services)
    async with watching(services.orchestrator.notifier) as heard:
        await services.orchestrator.notify(chat.key, "hello")
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == chat.key.as_str()


# ---------------------------------------------------------------------- reminders


async def test_a_reminder_fires_once_per_idle_period(services: Services) -> None:
    chat = await start_top_installation(services)
    orchestrator = services.orchestrator
    assert await orchestrator.fire_reminders(time.time()) == 0  # not idle long enough yet
    assert await orchestrator.fire_reminders(time.time() + LATER) == 1
    assert await orchestrator.fire_reminders(time.time() + LATER) == 0
    [reminder] = await orchestrator.take_notices(chat.key)
    assert reminder.kind == "reminder"
    assert reminder.text == f"Still on {TOP}? Say 'status' to see where we are."
    assert reminder.data == {"order_id": TOP}
    await chat.say("alcl90abcdef")  # back: the next idle period may remind again
    assert await orchestrator.fire_reminders(time.time() + LATER) == 1


async def test_no_reminder_without_an_order_at_hand(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.say("AB1234")  # an order is proposed, none started
    assert await services.orchestrator.fire_reminders(time.time() + LATER) == 0


async def test_a_reminder_is_due_after_the_configured_idle_time(
    make_services: ServicesFactory,
) -> None:
    services = await make_services(reminder_after=60.0)
    await start_top_installation(services)
    assert await services.orchestrator.fire_reminders(time.time() + 30) == 0
    assert await services.orchestrator.fire_reminders(time.time() + 61) == 1


async def test_two_instances_on_one_redis_remind_once(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    url, prefix = redis_url(), new_prefix()
    key = Fernet.generate_key().decode()
    try:
        one = await make_services(tmp_path, store=url, redis_prefix=prefix, secret_key=key)
        two = await make_services(tmp_path, store=url, redis_prefix=prefix, secret_key=key)
        chat = await start_top_installation(one)
        now = time.time() + LATER
        fired = await asyncio.gather(
            one.orchestrator.fire_reminders(now), two.orchestrator.fire_reminders(now)
        )
        assert sum(fired) == 1
        again = [await s.orchestrator.fire_reminders(now) for s in (one, two)]
        assert again == [0, 0]
        reminders = await two.orchestrator.take_notices(chat.key)
        assert [n.kind for n in reminders] == ["reminder"]
    finally:
        delete_prefix(url, prefix)


async def test_two_instances_on_one_store_remind_once(instance: Instance) -> None:
    one, two = await instance(), await instance()
    chat = await start_top_installation(one)
    now = time.time() + LATER
    fired = await asyncio.gather(
        one.orchestrator.fire_reminders(now), two.orchestrator.fire_reminders(now)
    )
    assert sum(fired) == 1
    assert [n.kind for n in await one.orchestrator.take_notices(chat.key)] == ["reminder"]


async def test_a_reminder_due_survives_a_restart_on_the_same_file(
    make_services: ServicesFactory,
) -> None:
    first = await make_services()
    chat = await start_top_installation(first)
    await first.aclose()
    second = await make_services()
    assert await second.orchestrator.fire_reminders(time.time() + LATER) == 1
    third = await make_services()
    assert await third.orchestrator.fire_reminders(time.time() + LATER) == 0
    [reminder] = await third.orchestrator.take_notices(chat.key)
    assert TOP in reminder.text


# ---------------------------------------------------------------------- the console's list


async def test_summaries_list_sessions_most_recent_first_without_opening_them(
    services: Services,
) -> None:
    first = await start_top_installation(services)
    second = MemoryBridge(services.orchestrator, "CD5678")
    await second.say("CD5678")
    listed = await services.sessions.summaries(10)
    assert [s.key for s in listed] == [second.key, first.key]
    assert listed[1].cuid == "AB1234" and listed[1].order is not None
    assert listed[1].order.order_id == TOP
    assert listed[1].last_turn_at is not None and listed[1].version > 0
    assert listed[1].plan is None  # not attached: a listing parses no plan


# ---------------------------------------------------------------------- the notifiers


Heard = asyncio.Queue[str]


@asynccontextmanager
async def watching(notifier: Notifier) -> AsyncIterator[Heard]:
    """Runs ``notifier.watch`` for the block; the keys it hands on arrive in the queue."""
    heard: Heard = asyncio.Queue()

    async def deliver(key: str) -> None:
        await heard.put(key)

    watcher = asyncio.create_task(notifier.watch(deliver))
    await asyncio.sleep(0)  # let it start
    try:
        yield heard
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def publish_until_heard(notifier: Notifier, heard: Heard, key: str) -> None:
    """Publish until the watcher hears it (its subscription may not be in place yet)."""
    for _ in range(50):
        await notifier.publish(key)
        with contextlib.suppress(TimeoutError):
            assert await asyncio.wait_for(heard.get(), 0.1) == key
            return
    pytest.fail("the notice was never heard")


async def test_a_local_notifier_hands_keys_on_and_outlives_a_failing_bridge() -> None:
    notifier = LocalNotifier()
    assert not notifier.shared
    calls: list[str] = []

    async def deliver(key: str) -> None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("bridge broke")

    watcher = asyncio.create_task(notifier.watch(deliver))
    await asyncio.sleep(0)
    for key in ("bad", "good"):
        await notifier.publish(key)
    for _ in range(100):
        if len(calls) == 2:
            break
        await asyncio.sleep(0.01)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert calls == ["bad", "good"]


@asynccontextmanager
async def redis_notifiers() -> AsyncIterator[tuple[Notifier, Notifier]]:
    url, keys = redis_url(), RedisKeys(new_prefix())
    clients = [connect(url), connect(url)]
    try:
        yield RedisNotifier(clients[0], keys), RedisNotifier(clients[1], keys)
    finally:
        for client in clients:
            await client.aclose()
        delete_prefix(url, keys.prefix)


@asynccontextmanager
async def postgres_notifiers() -> AsyncIterator[tuple[Notifier, Notifier]]:
    pools = [PostgresPool(sessions_url()), PostgresPool(sessions_url())]
    async with empty_pool():
        try:
            yield PostgresNotifier(pools[0]), PostgresNotifier(pools[1])
        finally:
            for pool in pools:
                await pool.aclose()


SHARED: dict[str, Callable[[], Any]] = {"redis": redis_notifiers, "postgres": postgres_notifiers}


@pytest.mark.parametrize("backend", list(SHARED))
async def test_a_notice_published_on_one_connection_reaches_a_watcher_on_another(
    backend: str,
) -> None:
    key = SessionKey("web", "", "", "AB:12%34").as_str()
    async with SHARED[backend]() as (one, two):
        assert one.shared and two.shared
        async with watching(one) as heard:
            await publish_until_heard(two, heard, key)
            await asyncio.sleep(0.2)
            while not heard.empty():
                heard.get_nowait()
            await two.publish("techassist:web:::CD5678")
            assert await asyncio.wait_for(heard.get(), TIMEOUT) == "techassist:web:::CD5678"


def test_a_notice_is_a_reply_that_says_what_it_is() -> None:
    notice = Notice(kind="handback", text="Back to you", data={"order_id": "WO-1"})
    reply = notice.as_reply()
    assert reply.text == "Back to you"
    assert reply.data == {"notice": "handback", "notice_id": notice.id, "order_id": "WO-1"}
    assert Notice(text="x").id != Notice(text="x").id
