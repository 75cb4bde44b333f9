"""Per-session locks."""

from __future__ import annotations

import asyncio

from orchestrator_core.locks import LocalLock


async def test_turns_of_one_session_run_one_at_a_time() -> None:
    locks = LocalLock()
    inside = 0
    most = 0

    async def turn() -> None:
        nonlocal inside, most
        async with locks.lock("k"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(turn() for _ in range(20)))
    assert most == 1


async def test_different_sessions_do_not_wait_for_each_other() -> None:
    locks = LocalLock()
    async with locks.lock("a"):
        await asyncio.wait_for(_enter(locks, "b"), timeout=1)


async def _enter(locks: LocalLock, key: str) -> None:
    async with locks.lock(key):
        pass


async def test_the_lock_table_shrinks_when_sessions_go_quiet() -> None:
    locks = LocalLock()
    await asyncio.gather(*(_enter(locks, f"k{i}") for i in range(100)))
    assert len(locks) == 0
