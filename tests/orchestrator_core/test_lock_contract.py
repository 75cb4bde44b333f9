"""One contract, every session lock: in-process leases and Redis leases behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from orchestrator_core.errors import LockError
from orchestrator_core.locks import LocalLock, SessionLock
from orchestrator_core.pg.sessions import PostgresLock
from orchestrator_core.stores.redis import RedisKeys, RedisLock, connect
from tests.pg_sessions import empty_pool
from tests.redis_server import delete_prefix, new_prefix, redis_url

LockFactory = Callable[..., SessionLock]


@asynccontextmanager
async def local_locks() -> AsyncIterator[LockFactory]:
    yield lambda **options: LocalLock(**options)


@asynccontextmanager
async def redis_locks() -> AsyncIterator[LockFactory]:
    url, prefix = redis_url(), new_prefix()
    client = connect(url)
    try:
        yield lambda **options: RedisLock(client, RedisKeys(prefix), **options)
    finally:
        await client.aclose()
        delete_prefix(url, prefix)


@asynccontextmanager
async def postgres_locks() -> AsyncIterator[LockFactory]:
    async with empty_pool() as pool:
        yield lambda **options: PostgresLock(pool, **options)


#: Every lock backend, by name: the contract below runs over each.
BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[LockFactory]]] = {
    "local": local_locks,
    "redis": redis_locks,
    "postgres": postgres_locks,
}


@pytest.fixture(params=list(BACKENDS))
async def make_lock(request: pytest.FixtureRequest) -> AsyncIterator[LockFactory]:
    async with BACKENDS[request.param]() as factory:
        yield factory


async def test_one_holder_at_a_time(make_lock: LockFactory) -> None:
    locks = make_lock()
    inside = most = 0

    async def turn() -> None:
        nonlocal inside, most
        async with locks.lock("k"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.002)
            inside -= 1

    await asyncio.gather(*(turn() for _ in range(10)))
    assert most == 1


async def test_two_lock_objects_on_one_backend_exclude_each_other(make_lock: LockFactory) -> None:
    first, second = make_lock(wait=0.0), make_lock(wait=0.0)
    if isinstance(first, LocalLock):
        second = first  # an in-process lock is shared by sharing the object
    async with first.lock("k"):
        with pytest.raises(LockError):
            async with second.lock("k"):
                pass
    # Released: the other takes it at once.
    async with second.lock("k"):
        pass


async def test_other_keys_do_not_wait(make_lock: LockFactory) -> None:
    locks = make_lock(wait=0.0)
    async with locks.lock("a"), locks.lock("b"):
        pass


async def test_waiting_is_bounded_by_a_lock_error(make_lock: LockFactory) -> None:
    locks = make_lock(wait=0.2)
    async with locks.lock("k"):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(LockError):
            async with locks.lock("k"):
                pass
        assert loop.time() - started < 5


async def test_an_unrenewed_lease_expires_and_the_next_holder_takes_it(
    make_lock: LockFactory,
) -> None:
    locks = make_lock(lifetime=0.2, renew=False, wait=5.0)
    async with locks.lock("k") as stale:
        await asyncio.sleep(0.3)
        async with locks.lock("k") as fresh:
            assert not fresh.lost
    # The first holder's release, after the takeover, is refused and recorded.
    assert stale.lost
    with pytest.raises(LockError):
        stale.check()


async def test_a_renewed_lease_outlives_its_lifetime(make_lock: LockFactory) -> None:
    locks = make_lock(lifetime=0.3, wait=0.0)
    async with locks.lock("k") as lease:
        await asyncio.sleep(0.8)
        with pytest.raises(LockError):
            async with locks.lock("k"):
                pass
        lease.check()
    assert not lease.lost


async def test_release_and_renewal_by_the_wrong_holder_are_refused(
    make_lock: LockFactory,
) -> None:
    locks = make_lock(wait=0.0)
    private: Any = locks  # the raw release and renewal calls, as a wrong holder would make them
    async with locks.lock("k") as lease:
        assert not await private._release("k", "not-the-token")
        assert not await private._renew("k", "not-the-token")
        with pytest.raises(LockError):
            async with locks.lock("k"):
                pass
        assert await private._renew("k", lease.token)
    assert not lease.lost
