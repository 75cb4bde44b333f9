"""The Redis and PostgreSQL clients across a restart of their server (the test's own).

Several connections are pooled when the server goes away; while it is down a
call fails at once, saying the server is unavailable; once it is back, not one
call fails on a connection left over from before, and the data is as it was.
"""

from __future__ import annotations

import asyncio

import pytest

from orchestrator_core.errors import LockUnavailable, StoreUnavailable, WorkOrdersUnavailable
from orchestrator_core.pg.migrate import upgrade
from orchestrator_core.pg.sessions import PostgresLock, PostgresPool, PostgresStore
from orchestrator_core.pg.workorders import PostgresWorkOrders
from orchestrator_core.stores.base import SessionStore
from orchestrator_core.stores.redis import RedisKeys, RedisLock, RedisStore, connect
from tests.own_servers import own_postgres, own_redis

pytestmark = pytest.mark.scale

#: Concurrent calls, so that the pool holds this many connections when the server goes.
POOLED = 6


async def busy(store: SessionStore) -> None:
    """Load one session from ``POOLED`` calls at once; every one finds it."""
    loaded = await asyncio.gather(*(store.load("k") for _ in range(POOLED)))
    assert all(item is not None and item.data == "kept" for item in loaded), loaded


async def test_redis_store_and_lock_across_a_restart() -> None:
    with own_redis() as server:
        store = RedisStore(connect(server.url), keys=RedisKeys("t:"))
        locks = RedisLock(store.client, RedisKeys("t:"), wait=1.0)
        try:
            assert await store.save("k", "kept", 0) == 1
            await busy(store)
            server.kill()
            with pytest.raises(StoreUnavailable):
                await store.load("k")
            with pytest.raises(LockUnavailable):
                async with locks.lock("k"):
                    pass
            server.start()  # from its append-only file
            await busy(store)
            async with locks.lock("k") as lease:
                assert await store.save("k", "kept", 1, lease=lease) == 2
        finally:
            await store.aclose()


async def test_postgres_pools_fail_fast_while_down_and_recover_after() -> None:
    with own_postgres() as server:
        url = server.create_database("techassist")
        await upgrade(url)
        pool = PostgresPool(url)
        store, locks = PostgresStore(pool), PostgresLock(pool, wait=1.0)
        orders = await PostgresWorkOrders.open(url, min_size=POOLED, max_size=POOLED)
        try:
            assert await store.save("k", "kept", 0) == 1
            await busy(store)
            server.stop()
            for _ in range(3):  # the technician sends again while it is still down
                with pytest.raises(StoreUnavailable):
                    await store.load("k")
                with pytest.raises(WorkOrdersUnavailable):
                    await orders.ping()
            server.start()
            await busy(store)
            for _ in range(POOLED):  # every pooled work-order connection is a new one
                await orders.ping()
            async with locks.lock("k") as lease:
                assert await store.save("k", "kept", 1, lease=lease) == 2
        finally:
            await orders.aclose()
            await store.aclose()
