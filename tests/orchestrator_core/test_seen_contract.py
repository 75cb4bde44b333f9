"""One contract, every backend of processed ids: in-process and Redis behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from orchestrator_core.dedupe import MemorySeen, Seen
from orchestrator_core.pg.sessions import PostgresPool, PostgresSeen
from orchestrator_core.stores.redis import RedisKeys, RedisSeen, connect
from tests.pg_sessions import empty_pool, sessions_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

SeenFactory = Callable[[], Seen]


@asynccontextmanager
async def memory_seen() -> AsyncIterator[SeenFactory]:
    shared = MemorySeen()
    yield lambda: shared  # one process: every "instance" is the same object


@asynccontextmanager
async def redis_seen() -> AsyncIterator[SeenFactory]:
    url, prefix = redis_url(), new_prefix()
    clients = []

    def instance() -> Seen:
        clients.append(connect(url))
        return RedisSeen(clients[-1], RedisKeys(prefix))

    try:
        yield instance
    finally:
        for client in clients:
            await client.aclose()
        delete_prefix(url, prefix)


@asynccontextmanager
async def postgres_seen() -> AsyncIterator[SeenFactory]:
    pools: list[PostgresPool] = []

    def instance() -> Seen:
        pools.append(PostgresPool(sessions_url()))  # another instance: a pool of its own
        return PostgresSeen(pools[-1])

    async with empty_pool():
        try:
            yield instance
        finally:
            for pool in pools:
                await pool.aclose()


#: Every backend, by name: the contract below runs over each.
BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[SeenFactory]]] = {
    "memory": memory_seen,
    "redis": redis_seen,
    "postgres": postgres_seen,
}


@pytest.fixture(params=list(BACKENDS))
async def make_seen(request: pytest.FixtureRequest) -> AsyncIterator[SeenFactory]:
    async with BACKENDS[request.param]() as factory:
        yield factory


async def test_an_id_is_first_once(make_seen: SeenFactory) -> None:
    seen = make_seen()
    assert await seen.first("event:Ev1", 60)
    assert not await seen.first("event:Ev1", 60)
    assert await seen.first("event:Ev2", 60)


async def test_of_many_racing_instances_exactly_one_is_first(make_seen: SeenFactory) -> None:
    instances = [make_seen() for _ in range(4)]
    answers = await asyncio.gather(*(s.first("ts:D1:1.0", 60) for s in instances * 5))
    assert answers.count(True) == 1


async def test_ids_given_together_are_recorded_together(make_seen: SeenFactory) -> None:
    one, two = make_seen(), make_seen()
    assert await one.first("ts:D1:1.0", 60, also=["event:Ev1"])
    # The same message under a new event id, and the same event id alone: both repeats.
    assert not await two.first("ts:D1:1.0", 60, also=["event:Ev9"])
    assert not await two.first("event:Ev1", 60)
    assert not await two.first("event:Ev9", 60)


async def test_an_id_is_forgotten_after_its_ttl(make_seen: SeenFactory) -> None:
    seen = make_seen()
    assert await seen.first("click:D1:1.0", 0.05)
    assert not await seen.first("click:D1:1.0", 0.05)
    await asyncio.sleep(0.15)
    assert await seen.first("click:D1:1.0", 60)
