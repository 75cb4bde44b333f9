"""Owners of a CUID on Redis: announced to every instance with a fence that orders the claims."""

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


async def test_a_claim_is_heard_by_another_instance_with_its_fence(
    redis: tuple[Redis, Redis, RedisKeys],
) -> None:
    one, two, keys = redis
    heard: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()

    async def taken(cuid: str, owner: str, fence: int) -> None:
        await heard.put((cuid, owner, fence))

    watcher = asyncio.create_task(RedisOwners(one, keys).watch(taken))
    try:
        other = RedisOwners(two, keys)
        for _ in range(50):  # until the subscription is in place
            fence = await other.claim("AB1234", "new")
            with contextlib.suppress(TimeoutError):
                assert await asyncio.wait_for(heard.get(), 0.1) == ("AB1234", "new", fence)
                break
        else:
            pytest.fail("the claim was never heard")
        await asyncio.sleep(0.2)
        while not heard.empty():  # a claim of the loop heard late
            heard.get_nowait()
        # Each claim's fence is larger than every earlier one's, on any instance: it
        # says which of two connections is the newer, whenever its announcement arrives.
        newer = await RedisOwners(one, keys).claim("AB1234", "newer")
        assert newer > fence
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("AB1234", "newer", newer)
        # An announcement that is not one (another program on the channel) is ignored.
        await two.publish(keys.takeover, "AB1234")
        # A server that lost its data (restarted without it) still numbers claims above
        # those of the connections that stayed open.
        await two.delete(keys.owner_fence)
        last = await other.claim("CD5678", "last")
        assert last > newer
        assert await asyncio.wait_for(heard.get(), TIMEOUT) == ("CD5678", "last", last)
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
