"""One contract, every shared backend of CUID owners: Redis and PostgreSQL behave the same.

A claim on one instance is heard by another with the current owner, a late
announcement of an older claim still names the newest owner, and only the
owner releases a CUID. Each "instance" has a client or pool of its own.
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
    announce: Callable[[str, str], Awaitable[None]]
    """Announces a claim of ``cuid`` by ``token`` without recording it: a late announcement."""


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

    async def announce(cuid: str, token: str) -> None:
        await reader.publish(keys.takeover, f"{token} {cuid}")

    try:
        yield Backend(instance, owner, announce)
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

    async def announce(cuid: str, token: str) -> None:
        async with await psycopg.AsyncConnection.connect(sessions_url(), autocommit=True) as c:
            await c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{token} {cuid}"))

    async with empty_pool():
        try:
            yield Backend(instance, owner, announce)
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


@asynccontextmanager
async def watching(owners: Owners) -> AsyncIterator[asyncio.Queue[tuple[str, str]]]:
    """Runs ``owners.watch`` for the block; what it hands on arrives in the queue."""
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def taken(cuid: str, owner: str) -> None:
        await heard.put((cuid, owner))

    watcher = asyncio.create_task(owners.watch(taken))
    try:
        yield heard
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def claim_until_heard(
    owners: Owners, heard: asyncio.Queue[tuple[str, str]], cuid: str, token: str
) -> None:
    """Claim until the watcher hears it (its subscription may not be in place yet), then
    forget whatever the repeated claims still bring."""
    for _ in range(50):
        await owners.claim(cuid, token)
        with contextlib.suppress(TimeoutError):
            assert await asyncio.wait_for(heard.get(), 0.1) == (cuid, token)
            break
    else:
        pytest.fail("the claim was never heard")
    await asyncio.sleep(0.2)
    while not heard.empty():
        heard.get_nowait()


async def test_a_claim_is_heard_by_another_instance_with_the_current_owner(
    backend: Backend,
) -> None:
    one, two = backend.instance(), backend.instance()
    assert one.shared and two.shared
    async with watching(one) as heard:
        await claim_until_heard(two, heard, "AB1234", "new")
        # An announcement of an older claim that arrives late names the current owner,
        # so the newer connection is never the one closed.
        await backend.announce("AB1234", "old")
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("AB1234", "new")


async def test_a_late_announcement_of_a_released_cuid_closes_nothing(backend: Backend) -> None:
    one, two = backend.instance(), backend.instance()
    async with watching(one) as heard:
        await claim_until_heard(two, heard, "AB1234", "gone")
        await two.release("AB1234", "gone")
        await backend.announce("AB1234", "gone")  # heard after the connection ended
        await two.claim("CD5678", "next")  # announcements arrive in order
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("CD5678", "next")


async def test_only_the_owner_releases_a_cuid(backend: Backend) -> None:
    first, second = backend.instance(), backend.instance()
    await first.claim("AB1234", "old")
    await second.claim("AB1234", "new")
    await first.release("AB1234", "old")  # taken over: no longer its to release
    assert await backend.owner("AB1234") == "new"
    await second.release("AB1234", "new")
    assert await backend.owner("AB1234") is None


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
