"""One contract, every session store: they must behave the same."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import PoolTimeout

from orchestrator_core.errors import (
    LockError,
    LockUnavailable,
    StaleVersionError,
    StoreUnavailable,
)
from orchestrator_core.pg.pool import unreachable
from orchestrator_core.pg.sessions import PostgresLock, PostgresPool, PostgresStore
from orchestrator_core.stores import MemoryStore, SessionStore, SqliteStore
from orchestrator_core.stores.base import (
    ANSWERS_KEPT,
    SNAPSHOT_GRACE,
    Answer,
    Retention,
    SessionMeta,
    Swept,
)
from orchestrator_core.stores.redis import RedisKeys, RedisLock, RedisStore, connect
from tests.pg_sessions import empty_pool
from tests.redis_server import delete_prefix, new_prefix, redis_url


@asynccontextmanager
async def memory_store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    store = MemoryStore()
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    store = SqliteStore(tmp_path / "sessions.db")
    try:
        yield store
    finally:
        await store.aclose()


@asynccontextmanager
async def redis_store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    url, prefix = redis_url(), new_prefix()
    store = RedisStore(connect(url), keys=RedisKeys(prefix))
    try:
        yield store
    finally:
        await store.aclose()
        delete_prefix(url, prefix)


@asynccontextmanager
async def postgres_store(tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with empty_pool() as pool:
        yield PostgresStore(pool, owns_pool=False)


#: Every session store backend, by name: the contract below runs over each.
BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[SessionStore]]] = {
    "memory": memory_store,
    "sqlite": sqlite_store,
    "redis": redis_store,
    "postgres": postgres_store,
}


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with BACKENDS[request.param](tmp_path) as backend:
        yield backend


async def test_unknown_key_loads_as_none(store: SessionStore) -> None:
    assert await store.load("nobody") is None


async def test_a_saved_session_loads_back_with_its_version(store: SessionStore) -> None:
    assert await store.save("k", '{"a": 1}', 0) == 1
    assert await store.save("k", '{"a": 2}', 1) == 2
    loaded = await store.load("k")
    assert loaded is not None and (loaded.data, loaded.version) == ('{"a": 2}', 2)


async def test_a_stale_save_fails_and_changes_nothing(store: SessionStore) -> None:
    await store.save("k", "first", 0)
    await store.save("k", "second", 1)
    with pytest.raises(StaleVersionError) as err:
        await store.save("k", "late writer", 1)
    assert err.value.actual == 2
    loaded = await store.load("k")
    assert loaded is not None and loaded.data == "second"


async def test_creating_an_existing_session_is_stale(store: SessionStore) -> None:
    await store.save("k", "mine", 0)
    with pytest.raises(StaleVersionError):
        await store.save("k", "theirs", 0)


async def test_saving_a_session_that_was_never_created_is_stale(store: SessionStore) -> None:
    with pytest.raises(StaleVersionError):
        await store.save("ghost", "x", 3)
    assert await store.load("ghost") is None


async def test_delete_forgets_and_tolerates_unknown_keys(store: SessionStore) -> None:
    await store.save("k", "x", 0)
    await store.delete("k")
    await store.delete("never-there")
    assert await store.load("k") is None


async def test_keys_do_not_collide(store: SessionStore) -> None:
    await store.save("a", "A", 0)
    await store.save("b", "B", 0)
    a, b = await store.load("a"), await store.load("b")
    assert a is not None and b is not None and (a.data, b.data) == ("A", "B")


async def test_sqlite_sessions_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.save("k", "kept", 0)
    await first.aclose()
    second = SqliteStore(path)
    try:
        loaded = await second.load("k")
        assert loaded is not None and (loaded.data, loaded.version) == ("kept", 1)
    finally:
        await second.aclose()


async def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    import sqlite3

    store = SqliteStore(tmp_path / "s.db", synchronous="FULL")
    await store.save("k", "x", 0)
    await store.aclose()
    with closing(sqlite3.connect(tmp_path / "s.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_an_answer_is_found_by_its_message_id_and_only_for_its_key(
    store: SessionStore,
) -> None:
    await store.save("k", "s1", 0, answer=Answer("evt-1", '[{"text": "one"}]'))
    await store.save("other", "o1", 0)
    assert await store.answered("k", "evt-1") == '[{"text": "one"}]'
    assert await store.answered("k", "evt-2") is None
    assert await store.answered("other", "evt-1") is None


async def test_a_stale_save_keeps_no_answer(store: SessionStore) -> None:
    await store.save("k", "s1", 0)
    await store.save("k", "s2", 1)
    with pytest.raises(StaleVersionError):
        await store.save("k", "late", 1, answer=Answer("evt-late", "[]"))
    assert await store.answered("k", "evt-late") is None


async def test_answers_are_kept_for_the_latest_saves_and_then_forgotten(
    store: SessionStore,
) -> None:
    turns = 3 * ANSWERS_KEPT
    for version in range(turns):
        await store.save(
            "k", f"s{version}", version, answer=Answer(f"evt-{version}", f"[{version}]")
        )
    for version in range(turns - ANSWERS_KEPT, turns):
        assert await store.answered("k", f"evt-{version}") == f"[{version}]"
    assert await store.answered("k", "evt-0") is None


async def test_deleting_a_session_forgets_its_answers(store: SessionStore) -> None:
    await store.save("k", "s1", 0, answer=Answer("evt-1", "[]"))
    await store.delete("k")
    assert await store.answered("k", "evt-1") is None


async def test_snapshots_are_write_once_by_digest(store: SessionStore) -> None:
    assert await store.get_snapshot("d1") is None
    await store.put_snapshot("d1", '{"plan": 1}')
    await store.put_snapshot("d1", '{"plan": "changed"}')
    assert await store.get_snapshot("d1") == '{"plan": 1}'


async def test_a_save_keeps_the_snapshot_it_is_the_first_to_refer_to(store: SessionStore) -> None:
    await store.save("k", "s1", 0, meta=SessionMeta(plan_digest="d1"), snapshot='{"plan": 1}')
    assert await store.get_snapshot("d1") == '{"plan": 1}'
    # Write-once, whichever way it comes.
    await store.save("j", "s1", 0, meta=SessionMeta(plan_digest="d1"), snapshot="changed")
    await store.put_snapshot("d1", "changed again")
    assert await store.get_snapshot("d1") == '{"plan": 1}'


async def test_a_stale_save_keeps_no_snapshot(store: SessionStore) -> None:
    await store.save("k", "s1", 0)
    with pytest.raises(StaleVersionError):
        await store.save("k", "s2", 0, meta=SessionMeta(plan_digest="d1"), snapshot="plan")
    assert await store.get_snapshot("d1") is None


async def test_sqlite_answers_and_snapshots_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.save("k", "kept", 0, answer=Answer("evt-1", "[1]"))
    await first.put_snapshot("d1", "plan")
    await first.aclose()
    second = SqliteStore(path)
    try:
        assert await second.answered("k", "evt-1") == "[1]"
        assert await second.get_snapshot("d1") == "plan"
    finally:
        await second.aclose()


# ------------------------------------------------------------------ expiry

DAY = 86_400.0
RETENTION = Retention(unidentified=3600.0, ended=DAY, idle=30 * DAY)


async def test_sweep_deletes_each_session_after_its_own_ttl(store: SessionStore) -> None:
    await store.save("stranger", "s", 0, meta=SessionMeta(state="unidentified"))
    await store.save("ended", "s", 0, meta=SessionMeta(state="ended"))
    await store.save("working", "s", 0, answer=Answer("evt", "[]"))
    now = time.time()
    assert await store.sweep(RETENTION, now) == Swept()
    assert await store.sweep(RETENTION, now + 2 * 3600) == Swept(sessions=1)
    assert await store.load("stranger") is None and await store.load("ended") is not None
    assert await store.sweep(RETENTION, now + 2 * DAY) == Swept(sessions=1)
    assert await store.load("ended") is None and await store.load("working") is not None
    assert await store.sweep(RETENTION, now + 31 * DAY) == Swept(sessions=1)
    assert await store.load("working") is None
    assert await store.answered("working", "evt") is None


async def test_a_save_renews_a_session_and_its_state(store: SessionStore) -> None:
    await store.save("k", "s1", 0, meta=SessionMeta(state="ended"))
    await store.save("k", "s2", 1, meta=SessionMeta(state="active"))
    assert await store.sweep(RETENTION, time.time() + 2 * DAY) == Swept()
    assert await store.load("k") is not None


async def test_sweep_deletes_snapshots_no_session_refers_to(store: SessionStore) -> None:
    await store.put_snapshot("used", "plan A")
    await store.put_snapshot("unused", "plan B")
    await store.save("k", "s", 0, meta=SessionMeta(plan_digest="used"))
    now = time.time()
    # A snapshot just put may belong to a session not saved yet: it is kept a while.
    assert await store.sweep(RETENTION, now) == Swept()
    assert await store.sweep(RETENTION, now + SNAPSHOT_GRACE + 1) == Swept(snapshots=1)
    assert await store.get_snapshot("used") == "plan A"
    assert await store.get_snapshot("unused") is None


async def test_a_snapshot_saved_with_its_session_goes_after_it(store: SessionStore) -> None:
    await store.save("k", "s", 0, meta=SessionMeta(plan_digest="d1"), snapshot="plan")
    now = time.time()
    assert await store.sweep(RETENTION, now + SNAPSHOT_GRACE + 1) == Swept()
    assert await store.get_snapshot("d1") == "plan"
    assert await store.sweep(RETENTION, now + 31 * DAY) == Swept(sessions=1, snapshots=1)
    assert await store.get_snapshot("d1") is None


async def test_a_burst_of_turns_larger_than_any_connection_pool_is_all_answered(
    store: SessionStore,
) -> None:
    # More calls in flight than a networked store keeps connections: they wait
    # their turn for one, none fails for want of a connection.
    keys = [f"burst-{i}" for i in range(300)]
    versions = await asyncio.gather(*(store.save(k, "s", 0) for k in keys))
    assert versions == [1] * len(keys)
    loaded = await asyncio.gather(*(store.load(k) for k in keys))
    assert all(row is not None and row.version == 1 for row in loaded)


async def test_sqlite_sessions_saved_before_expiry_are_classified_from_their_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE sessions (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
            " data TEXT NOT NULL, updated_at REAL NOT NULL)"
        )
        for key, data in {
            "stranger": '{"cuid": null, "phase": "identify"}',
            "ended": '{"cuid": "AB1234", "phase": "ended"}',
            "working": '{"cuid": "AB1234", "phase": "collect", "plan_digest": "d1"}',
        }.items():
            db.execute("INSERT INTO sessions VALUES (?, 1, ?, ?)", (key, data, time.time()))
    store = SqliteStore(path)
    try:
        await store.put_snapshot("d1", "plan")
        now = time.time() + SNAPSHOT_GRACE + 2 * 3600
        assert await store.sweep(RETENTION, now) == Swept(sessions=1)
        assert await store.sweep(RETENTION, now + 2 * DAY) == Swept(sessions=1)
        assert await store.get_snapshot("d1") == "plan"
        assert (await store.load("working")) is not None
    finally:
        await store.aclose()


# ------------------------------------------------------------------ Redis: TTLs, keys, errors


async def test_redis_keys_expire_by_the_state_of_the_last_save() -> None:
    url, prefix = redis_url(), new_prefix()
    keys = RedisKeys(prefix)
    store = RedisStore(connect(url), keys=keys, retention=RETENTION)
    try:
        await store.put_snapshot("d1", "plan")
        await store.save("k", "s", 0, meta=SessionMeta(state="unidentified"))
        assert 0 < await store.client.pttl(keys.session("k")) <= 3600_000
        await store.save(
            "k", "s", 1, answer=Answer("evt", "[]"), meta=SessionMeta(plan_digest="d1")
        )
        for name in (keys.session("k"), keys.answers("k"), keys.snapshot("d1")):
            assert 29 * DAY * 1000 < await store.client.pttl(name) <= 30 * DAY * 1000
        await store.save("k", "s", 2, meta=SessionMeta(state="ended"))
        assert 0 < await store.client.pttl(keys.session("k")) <= DAY * 1000
        # The snapshot stays as long as the session that referred to it might.
        assert await store.client.pttl(keys.snapshot("d1")) > 29 * DAY * 1000
        names = [name async for name in store.client.scan_iter(match="*k")]
        assert all(name.startswith(prefix) for name in names)
    finally:
        await store.aclose()
        delete_prefix(url, prefix)


async def test_redis_not_reachable_is_a_store_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = RedisKeys(new_prefix())
    store = RedisStore(connect(f"redis://127.0.0.1:{port}/0"), keys=keys)
    try:
        for call in (store.load("k"), store.save("k", "s", 0), store.ping()):
            with pytest.raises(StoreUnavailable) as err:
                await call
            assert isinstance(err.value.__cause__, redis.RedisError)
            assert not isinstance(err.value, StaleVersionError)
        # The lock too says its server is away, not that the session stayed locked.
        with pytest.raises(LockUnavailable):
            async with RedisLock(store.client, keys).lock("k"):
                pass
    finally:
        await store.aclose()


#: A save that is the first to refer to plan snapshot d1, and carries it.
STARTS_AN_ORDER: dict[str, Any] = {"meta": SessionMeta(plan_digest="d1"), "snapshot": "plan"}


async def test_a_redis_save_under_a_lease_taken_over_is_refused() -> None:
    url, prefix = redis_url(), new_prefix()
    keys = RedisKeys(prefix)
    store = RedisStore(connect(url), keys=keys)
    locks = RedisLock(store.client, keys, lifetime=0.1, renew=False, wait=2.0)
    try:
        await store.save("k", "first", 0)
        async with locks.lock("k") as late:
            await asyncio.sleep(0.2)
            async with locks.lock("k") as holder:
                assert holder.prefetched is not None and holder.prefetched.stored is not None
                with pytest.raises(LockError):
                    await store.save("k", "late writer", 1, lease=late, **STARTS_AN_ORDER)
                assert await store.get_snapshot("d1") is None
                assert await store.save("k", "holder", 1, lease=holder) == 2
                assert holder.released and await store.client.get(keys.lock("k")) is None
        loaded = await store.load("k")
        assert loaded is not None and loaded.data == "holder"
    finally:
        await store.aclose()
        delete_prefix(url, prefix)


async def test_a_postgres_save_under_a_lease_taken_over_is_refused() -> None:
    async with empty_pool() as pool:
        store = PostgresStore(pool, owns_pool=False)
        locks = PostgresLock(pool, lifetime=0.1, renew=False, wait=2.0)
        await store.save("k", "first", 0)
        async with locks.lock("k") as late:
            await asyncio.sleep(0.2)
            async with locks.lock("k") as holder:
                with pytest.raises(LockError):
                    await store.save("k", "late writer", 1, lease=late, **STARTS_AN_ORDER)
                assert await store.get_snapshot("d1") is None
                assert await store.save("k", "holder", 1, lease=holder) == 2
                assert holder.released
            # Released with the save: another turn takes the lease at once.
            async with PostgresLock(pool, wait=0.0).lock("k"):
                pass
        loaded = await store.load("k")
        assert loaded is not None and loaded.data == "holder"


async def test_postgres_not_reachable_is_a_store_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = PostgresPool(f"postgresql://postgres@127.0.0.1:{port}/none", timeout=1.0)
    store = PostgresStore(pool)
    try:
        for call in (store.load("k"), store.save("k", "s", 0), store.ping()):
            with pytest.raises(StoreUnavailable) as err:
                await call
            assert not isinstance(err.value, StaleVersionError)
        with pytest.raises(LockUnavailable):
            async with PostgresLock(pool).lock("k"):
                pass
    finally:
        await store.aclose()


def test_only_a_server_out_of_reach_counts_as_unavailable() -> None:
    """A deadlock or a statement timeout is the database answering, not the server gone:
    the technician is told to send again only when the server cannot be reached."""
    assert unreachable(psycopg.OperationalError("connection refused"))  # raised by the client
    assert unreachable(psycopg.errors.AdminShutdown("terminating connection"))
    assert unreachable(psycopg.errors.CannotConnectNow("the database system is starting up"))
    assert unreachable(PoolTimeout("couldn't get a connection after 1.00 sec"))
    assert not unreachable(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert not unreachable(psycopg.errors.QueryCanceled("statement timeout"))
    assert not unreachable(psycopg.errors.UniqueViolation("duplicate key"))
