"""Owners of a CUID on Redis: announced to every instance, fenced by the owner key."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from orchestrator_core.stores.redis import RedisKeys, RedisOwners, connect
from tests.redis_server import delete_prefix, new_prefix, redis_url

TIMEOUT = 5.0


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, Redis, RedisKeys]]:
    """Two clients (two instances) on one fresh prefix."""
    url, prefix = redis_url(), new_prefix()
    one, two = connect(url), connect(url)
    try:
        yield one, two, RedisKeys(prefix)
    finally:
        await one.aclose()
        await two.aclose()
        delete_prefix(url, prefix)


async def test_a_claim_is_heard_by_another_instance_with_the_current_owner(
    redis: tuple[Redis, Redis, RedisKeys],
) -> None:
    one, two, keys = redis
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def taken(cuid: str, owner: str) -> None:
        await heard.put((cuid, owner))

    watcher = asyncio.create_task(RedisOwners(one, keys).watch(taken))
    try:
        other = RedisOwners(two, keys)
        for _ in range(50):  # until the subscription is in place
            await other.claim("AB1234", "new")
            with contextlib.suppress(TimeoutError):
                assert await asyncio.wait_for(heard.get(), 0.1) == ("AB1234", "new")
                break
        else:
            pytest.fail("the claim was never heard")
        await asyncio.sleep(0.2)
        while not heard.empty():  # a claim of the loop heard late
            heard.get_nowait()
        # An announcement of an older claim that arrives late names the current owner,
        # so the newer connection is never the one closed.
        await two.publish(keys.takeover, "old AB1234")
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("AB1234", "new")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_only_the_owner_releases_a_cuid(redis: tuple[Redis, Redis, RedisKeys]) -> None:
    one, two, keys = redis
    first, second = RedisOwners(one, keys), RedisOwners(two, keys)
    await first.claim("AB1234", "old")
    await second.claim("AB1234", "new")
    await first.release("AB1234", "old")  # taken over: no longer its to release
    assert await one.get(keys.owner("AB1234")) == "new"
    await second.release("AB1234", "new")
    assert await one.get(keys.owner("AB1234")) is None
