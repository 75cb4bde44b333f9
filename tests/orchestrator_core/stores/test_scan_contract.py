"""Listing sessions (``scan``) and the sessions due a reminder (``due``), on every store."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.stores import SessionStore, SqliteStore
from orchestrator_core.stores.base import Retention, SessionMeta
from orchestrator_core.stores.redis import RedisKeys, RedisStore, connect
from tests.orchestrator_core.stores.test_contract import BACKENDS
from tests.redis_server import delete_prefix, new_prefix, redis_url


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with BACKENDS[request.param](tmp_path) as backend:
        yield backend


async def saved_apart(store: SessionStore, *keys: str) -> None:
    """Save each key in turn, a little apart, so their save times differ."""
    for key in keys:
        await store.save(key, f'{{"k": "{key}"}}', 0)
        await asyncio.sleep(0.01)


async def test_scan_lists_sessions_most_recently_saved_first(store: SessionStore) -> None:
    await saved_apart(store, "a", "b", "c")
    await store.save("a", '{"k": "a2"}', 1)  # saved again: now the most recent
    listed = await store.scan()
    assert [s.key for s in listed] == ["a", "c", "b"]
    assert (listed[0].data, listed[0].version) == ('{"k": "a2"}', 2)
    assert listed[0].saved_at >= listed[1].saved_at >= listed[2].saved_at
    assert abs(listed[0].saved_at - time.time()) < 60


async def test_scan_stops_at_its_limit(store: SessionStore) -> None:
    await saved_apart(store, "a", "b", "c")
    assert [s.key for s in await store.scan(limit=2)] == ["c", "b"]
    assert await store.scan(limit=0) == []


async def test_scan_of_an_empty_store_is_empty(store: SessionStore) -> None:
    assert await store.scan() == []


async def test_a_deleted_session_leaves_the_scan_and_the_due_list(store: SessionStore) -> None:
    await store.save("a", "A", 0, meta=SessionMeta(remind_at=100.0))
    await store.save("b", "B", 0, meta=SessionMeta(remind_at=100.0))
    await store.delete("a")
    assert [s.key for s in await store.scan()] == ["b"]
    assert await store.due(200.0) == ["b"]


async def test_due_lists_the_sessions_whose_reminder_time_has_come(store: SessionStore) -> None:
    await store.save("late", "x", 0, meta=SessionMeta(remind_at=300.0))
    await store.save("early", "x", 0, meta=SessionMeta(remind_at=100.0))
    await store.save("never", "x", 0)
    await store.save("exact", "x", 0, meta=SessionMeta(remind_at=200.0))
    assert await store.due(50.0) == []
    assert await store.due(200.0) == ["early", "exact"]
    assert await store.due(1e12) == ["early", "exact", "late"]
    assert await store.due(1e12, limit=1) == ["early"]


async def test_the_due_time_is_the_one_of_the_last_save(store: SessionStore) -> None:
    await store.save("k", "x", 0, meta=SessionMeta(remind_at=100.0))
    await store.save("k", "x", 1, meta=SessionMeta(remind_at=500.0))  # the technician spoke
    assert await store.due(200.0) == []
    assert await store.due(600.0) == ["k"]
    await store.save("k", "x", 2)  # reminded, or the order ended: no longer due
    assert await store.due(1e12) == []


async def test_a_stale_save_changes_no_due_time(store: SessionStore) -> None:
    await store.save("k", "x", 0, meta=SessionMeta(remind_at=100.0))
    with pytest.raises(StaleVersionError):
        await store.save("k", "y", 0, meta=SessionMeta(remind_at=None))
    assert await store.due(200.0) == ["k"]


async def test_sweep_takes_expired_sessions_off_both_lists(store: SessionStore) -> None:
    await store.save("old", "x", 0, meta=SessionMeta(remind_at=100.0))
    await asyncio.sleep(0.05)
    swept_at = time.time()
    await store.save("new", "x", 0, meta=SessionMeta(remind_at=100.0))
    swept = await store.sweep(Retention(idle=0.02), swept_at)
    assert swept.sessions == 1
    assert [s.key for s in await store.scan()] == ["new"]
    assert await store.due(200.0) == ["new"]


async def test_sqlite_due_times_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SqliteStore(path)
    await first.save("k", "x", 0, meta=SessionMeta(remind_at=100.0))
    await first.aclose()
    again = SqliteStore(path)
    try:
        assert await again.due(200.0) == ["k"]
        assert [s.key for s in await again.scan()] == ["k"]
    finally:
        await again.aclose()


async def test_a_sqlite_file_from_before_reminders_gains_its_column(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE sessions (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
            " data TEXT NOT NULL, updated_at REAL NOT NULL,"
            " state TEXT NOT NULL DEFAULT 'active', plan_digest TEXT);"
            "INSERT INTO sessions VALUES ('old', 3, '{}', 1.0, 'active', NULL);"
        )
    store = SqliteStore(path)
    try:
        assert [(s.key, s.version) for s in await store.scan()] == [("old", 3)]
        assert await store.due(1e12) == []
        await store.save("old", "{}", 3, meta=SessionMeta(remind_at=5.0))
        assert await store.due(10.0) == ["old"]
    finally:
        await store.aclose()


async def test_redis_lists_forget_sessions_redis_expired_by_itself() -> None:
    url, keys = redis_url(), RedisKeys(new_prefix())
    store = RedisStore(connect(url), keys=keys)
    try:
        await store.save("gone", "x", 0, meta=SessionMeta(remind_at=100.0))
        await store.save("kept", "y", 0, meta=SessionMeta(remind_at=100.0))
        await store.client.delete(keys.session("gone"))  # as its TTL would
        assert await store.due(200.0) == ["kept"]
        assert [s.key for s in await store.scan()] == ["kept"]
        # And the indexes no longer hold it.
        assert await store.client.zscore(keys.due, "gone") is None
        assert await store.client.zscore(keys.recent, "gone") is None
    finally:
        await store.aclose()
        delete_prefix(url, keys.prefix)
