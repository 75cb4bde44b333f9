"""One contract, every shared backend of CUID owners: Redis and PostgreSQL behave the same.

A claim on one instance is heard by another with its token and fence, every
later claim on any instance gets a larger fence, what is not an announcement
is ignored, and only the owner releases a CUID. Each "instance" has a client
or pool of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import psycopg
import pytest

from orchestrator_core.owners import Owners
from orchestrator_core.pg.owners import CHANNEL, PostgresOwners
from orchestrator_core.pg.sessions import PostgresPool
from orchestrator_core.stores.redis import RedisKeys, RedisOwners, connect
from tests.pg_sessions import empty_pool, sessions_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

TIMEOUT = 5.0


@dataclass
class Backend:
    """Makes instances of one backend, and reaches under them as another client would."""

    instance: Callable[[], Owners]
    owner: Callable[[str], Awaitable[str | None]]
    """The token recorded as the CUID's owner, read directly."""
    publish: Callable[[str], Awaitable[None]]
    """Sends raw text on the announcements' channel, as another program could."""


@asynccontextmanager
async def redis_owners() -> AsyncIterator[Backend]:
    url, prefix = redis_url(), new_prefix()
    keys, reader = RedisKeys(prefix), connect(url)
    clients = [reader]

    def instance() -> Owners:
        clients.append(connect(url))
        return RedisOwners(clients[-1], keys)

    async def owner(cuid: str) -> str | None:
        value = await reader.get(keys.owner(cuid))
        return None if value is None else str(value)

    async def publish(text: str) -> None:
        await reader.publish(keys.takeover, text)

    try:
        yield Backend(instance, owner, publish)
    finally:
        for client in clients:
            await client.aclose()
        delete_prefix(url, prefix)


@asynccontextmanager
async def postgres_owners() -> AsyncIterator[Backend]:
    pools: list[PostgresPool] = []

    def instance() -> Owners:
        pools.append(PostgresPool(sessions_url()))  # another instance: a pool of its own
        return PostgresOwners(pools[-1])

    async def owner(cuid: str) -> str | None:
        async with await psycopg.AsyncConnection.connect(sessions_url()) as conn:
            cur = await conn.execute("SELECT token FROM connection_owners WHERE cuid = %s", (cuid,))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def publish(text: str) -> None:
        async with await psycopg.AsyncConnection.connect(sessions_url(), autocommit=True) as c:
            await c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))

    async with empty_pool():
        try:
            yield Backend(instance, owner, publish)
        finally:
            for pool in pools:
                await pool.aclose()


#: Every shared backend, by name: the contract below runs over each.
BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[Backend]]] = {
    "redis": redis_owners,
    "postgres": postgres_owners,
}


@pytest.fixture(params=list(BACKENDS))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with BACKENDS[request.param]() as made:
        yield made


#: What a watcher heard: CUID, token and fence of each claim.
Heard = asyncio.Queue[tuple[str, str, int]]


@asynccontextmanager
async def watching(owners: Owners) -> AsyncIterator[Heard]:
    """Runs ``owners.watch`` for the block; what it hands on arrives in the queue."""
    heard: Heard = asyncio.Queue()

    async def taken(cuid: str, owner: str, fence: int) -> None:
        await heard.put((cuid, owner, fence))

    watcher = asyncio.create_task(owners.watch(taken))
    try:
        yield heard
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def claim_until_heard(owners: Owners, heard: Heard, cuid: str, token: str) -> int:
    """Claim until the watcher hears it (its subscription may not be in place yet), then
    forget whatever the repeated claims still bring; the last claim's fence."""
    for _ in range(50):
        fence = await owners.claim(cuid, token)
        with contextlib.suppress(TimeoutError):
            assert await asyncio.wait_for(heard.get(), 0.1) == (cuid, token, fence)
            break
    else:
        pytest.fail("the claim was never heard")
    await asyncio.sleep(0.2)
    while not heard.empty():
        heard.get_nowait()
    return fence


async def test_a_claim_is_heard_by_another_instance_with_its_fence(backend: Backend) -> None:
    one, two = backend.instance(), backend.instance()
    assert one.shared and two.shared
    async with watching(one) as heard:
        first = await claim_until_heard(two, heard, "AB1234", "new")
        # Every later claim, on any instance, has a larger fence: it says which of two
        # connections is the newer, whenever its announcement arrives.
        newer = await one.claim("AB1234", "newer")
        assert newer > first
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("AB1234", "newer", newer)


async def test_what_is_not_an_announcement_is_ignored(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = backend.instance(), backend.instance()
    async with watching(one) as heard:
        await claim_until_heard(two, heard, "AB1234", "first")
        for text in ("AB1234", "old AB1234", "12 token-only"):  # another program's chatter
            await backend.publish(text)
        fence = await two.claim("CD5678", "next")  # announcements arrive in order
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("CD5678", "next", fence)
    assert "ignored a takeover announcement" in caplog.text


async def test_only_the_owner_releases_a_cuid(backend: Backend) -> None:
    first, second = backend.instance(), backend.instance()
    await first.claim("AB1234", "old")
    await second.claim("AB1234", "new")
    await first.release("AB1234", "old")  # taken over: no longer its to release
    assert await backend.owner("AB1234") == "new"
    await second.release("AB1234", "new")
    assert await backend.owner("AB1234") is None


async def test_a_redis_server_that_lost_its_data_still_numbers_new_claims_above_old_ones() -> None:
    url, keys = redis_url(), RedisKeys(new_prefix())
    client = connect(url)
    try:
        owners = RedisOwners(client, keys)
        before = await owners.claim("AB1234", "open")
        await client.delete(keys.owner_fence)  # a restart without its data: the counter is gone
        assert await owners.claim("CD5678", "later") > before
    finally:
        await client.aclose()
        delete_prefix(url, keys.prefix)


async def test_the_postgres_listener_listens_again_after_losing_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with postgres_owners() as backend:
        one, two = backend.instance(), backend.instance()
        async with watching(one) as heard:
            await claim_until_heard(two, heard, "AB1234", "first")
            async with await psycopg.AsyncConnection.connect(
                sessions_url(), autocommit=True
            ) as admin:
                cur = await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
                )
                assert await cur.fetchall() == [(True,)]  # the listener, cut
            # Heard again once the listener is back, a pause later.
            await claim_until_heard(two, heard, "AB1234", "second")
    assert "the takeover listener lost PostgreSQL" in caplog.text
