"""A technician's sessions (``sessions_of``), on every store: found however many others were
saved since, moved when the CUID changes, gone with a delete or a sweep."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.pg.migrate import upgrade
from orchestrator_core.pg.sessions import PostgresPool, PostgresStore
from orchestrator_core.stores import SessionStore, SqliteStore
from orchestrator_core.stores.base import Retention, SessionMeta
from orchestrator_core.stores.redis import RedisKeys, RedisStore, connect, glob_escape
from tests.orchestrator_core.stores.test_contract import BACKENDS
from tests.orchestrator_core.workorders.backends import empty_postgres_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

__all__ = ["empty_postgres_url"]

#: More sessions than a scan of the most recent ones (1000) would look through.
CROWD = 1200


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    async with BACKENDS[request.param](tmp_path) as backend:
        yield backend


def of(cuid: str | None) -> SessionMeta:
    return SessionMeta(cuid=cuid)


async def keys_of(store: SessionStore, cuid: str, limit: int = 50) -> list[str]:
    return [s.key for s in await store.sessions_of(cuid, limit=limit)]


async def test_a_technicians_sessions_are_listed_most_recently_saved_first(
    store: SessionStore,
) -> None:
    for key, cuid in (("phone", "AB1234"), ("other", "CD5678"), ("laptop", "AB1234")):
        await store.save(key, f'{{"k": "{key}"}}', 0, meta=of(cuid))
        await asyncio.sleep(0.01)
    await store.save("nobody", "{}", 0)  # not identified yet: nobody's
    assert await keys_of(store, "AB1234") == ["laptop", "phone"]
    await store.save("phone", '{"k": "phone again"}', 1, meta=of("AB1234"))
    listed = await store.sessions_of("AB1234")
    assert [s.key for s in listed] == ["phone", "laptop"]
    assert (listed[0].data, listed[0].version) == ('{"k": "phone again"}', 2)
    assert listed[0].saved_at >= listed[1].saved_at
    assert abs(listed[0].saved_at - time.time()) < 60
    assert await keys_of(store, "CD5678") == ["other"]
    assert await keys_of(store, "ZZ9999") == []


async def test_sessions_of_stops_at_its_limit(store: SessionStore) -> None:
    for key in ("a", "b", "c"):
        await store.save(key, "{}", 0, meta=of("AB1234"))
        await asyncio.sleep(0.01)
    assert await keys_of(store, "AB1234", limit=2) == ["c", "b"]
    assert await keys_of(store, "AB1234", limit=0) == []


async def test_a_technician_is_found_behind_more_sessions_than_a_scan_reads(
    store: SessionStore,
) -> None:
    await store.save("quiet", '{"cuid": "AB1234"}', 0, meta=of("AB1234"))
    for n in range(CROWD):
        await store.save(f"busy-{n}", "{}", 0, meta=of(f"X{n:05d}"))
    assert "quiet" not in [s.key for s in await store.scan()]
    [found] = await store.sessions_of("AB1234")
    assert (found.key, found.data, found.version) == ("quiet", '{"cuid": "AB1234"}', 1)


async def test_a_session_whose_cuid_changes_moves_to_the_new_technician(
    store: SessionStore,
) -> None:
    await store.save("k", "{}", 0, meta=of("AB1234"))
    await store.save("k", "{}", 1, meta=of("CD5678"))
    assert await keys_of(store, "AB1234") == []
    assert await keys_of(store, "CD5678") == ["k"]
    await store.save("k", "{}", 2, meta=of(None))  # signed out: nobody's
    assert await keys_of(store, "CD5678") == []
    await store.save("k", "{}", 3, meta=of("CD5678"))
    assert await keys_of(store, "CD5678") == ["k"]


async def test_a_stale_save_moves_no_session(store: SessionStore) -> None:
    await store.save("k", "{}", 0, meta=of("AB1234"))
    with pytest.raises(StaleVersionError):
        await store.save("k", "{}", 0, meta=of("CD5678"))
    assert await keys_of(store, "AB1234") == ["k"]
    assert await keys_of(store, "CD5678") == []


async def test_a_deleted_session_leaves_its_technicians_list(store: SessionStore) -> None:
    await store.save("a", "{}", 0, meta=of("AB1234"))
    await store.save("b", "{}", 0, meta=of("AB1234"))
    await store.delete("a")
    assert await keys_of(store, "AB1234") == ["b"]
    await store.delete("b")
    assert await keys_of(store, "AB1234") == []
    await store.save("a", "{}", 0, meta=of("AB1234"))  # the key starts afresh
    assert await keys_of(store, "AB1234") == ["a"]


async def test_a_swept_session_leaves_its_technicians_list(store: SessionStore) -> None:
    await store.save("old", "{}", 0, meta=of("AB1234"))
    await asyncio.sleep(0.05)
    swept_at = time.time()
    await store.save("new", "{}", 0, meta=of("AB1234"))
    swept = await store.sweep(Retention(idle=0.02), swept_at)
    assert swept.sessions == 1
    assert await keys_of(store, "AB1234") == ["new"]


async def test_a_sqlite_file_from_before_the_index_finds_its_technicians(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    with closing(sqlite3.connect(path)) as db:
        db.executescript(
            "CREATE TABLE sessions (key TEXT PRIMARY KEY, version INTEGER NOT NULL,"
            " data TEXT NOT NULL, updated_at REAL NOT NULL,"
            " state TEXT NOT NULL DEFAULT 'active', plan_digest TEXT, remind_at REAL);"
            """INSERT INTO sessions VALUES ('old', 3, '{"cuid": "AB1234"}', 1.0, 'active',
                NULL, NULL);"""
            """INSERT INTO sessions VALUES ('anon', 1, '{"cuid": null}', 2.0, 'unidentified',
                NULL, NULL);"""
            "INSERT INTO sessions VALUES ('odd', 1, 'not json', 3.0, 'active', NULL, NULL);"
        )
    store = SqliteStore(path)
    try:
        assert [(s.key, s.version) for s in await store.sessions_of("AB1234")] == [("old", 3)]
        await store.save("old", "{}", 3, meta=of("CD5678"))
        assert await keys_of(store, "AB1234") == []
        assert await keys_of(store, "CD5678") == ["old"]
    finally:
        await store.aclose()
    again = SqliteStore(path)  # opened again: nothing to add, the index is as it was
    try:
        assert await keys_of(again, "CD5678") == ["old"]
    finally:
        await again.aclose()


async def test_redis_forgets_sessions_it_expired_by_itself() -> None:
    url, keys = redis_url(), RedisKeys(new_prefix())
    store = RedisStore(connect(url), keys=keys)
    try:
        for key in ("kept", "gone-1", "gone-2", "gone-3"):
            await store.save(key, "{}", 0, meta=of("AB1234"))
            await asyncio.sleep(0.01)
        for key in ("gone-1", "gone-2", "gone-3"):
            await store.client.delete(keys.session(key))  # as their TTL would
        # The newest entries are gone: the one behind them is still read within the limit.
        assert await keys_of(store, "AB1234", limit=1) == ["kept"]
        assert await store.client.zrange(keys.technician("AB1234"), 0, -1) == ["kept"]
        # The index expires with the sessions it lists, should nobody ever sweep.
        assert await store.client.pttl(keys.technician("AB1234")) > 0
    finally:
        await store.aclose()
        delete_prefix(url, keys.prefix)


async def test_the_postgresql_upgrade_fills_in_the_technicians_of_sessions_saved_before(
    empty_postgres_url: str,
) -> None:
    url = empty_postgres_url
    await upgrade(url, to=5)  # the schema as the version before the index left it
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for key, data, saved_at in (
            ("old", json.dumps({"cuid": "AB1234"}), 1.0),
            ("anon", '{"cuid": null}', 2.0),
            ("odd", "not json", 3.0),
        ):
            await conn.execute(
                "INSERT INTO sessions (key, data, version, state, saved_at)"
                " VALUES (%s, %s, 1, 'active', %s)",
                (key, data, saved_at),
            )
    assert "006_session_cuid" in await upgrade(url)
    pool = PostgresPool(url)
    store = PostgresStore(pool)
    try:
        assert [(s.key, s.version) for s in await store.sessions_of("AB1234")] == [("old", 1)]
        await store.save("old", "{}", 1, meta=of("CD5678"))
        assert await keys_of(store, "AB1234") == []
        assert await keys_of(store, "CD5678") == ["old"]
        assert [s.key for s in await store.scan()] == ["old", "odd", "anon"]  # all kept
    finally:
        await store.aclose()


async def test_redis_sessions_saved_before_the_index_are_indexed_by_the_first_sweep() -> None:
    url, keys = redis_url(), RedisKeys(new_prefix())
    store = RedisStore(connect(url), keys=keys)
    try:
        saved = {
            "first": '{"cuid": "AB1234"}',
            "second": '{"cuid": "AB1234"}',
            "anon": '{"cuid": null}',
            "odd": "not json",
        }
        for key, data in saved.items():
            await store.save(key, data, 0, meta=of("AB1234" if "AB1234" in data else None))
            await asyncio.sleep(0.01)
        # As a version before the index left them: no CUID field, no index.
        for key in saved:
            await store.client.hdel(keys.session(key), "cuid")
        await store.client.delete(keys.technician("AB1234"))
        await store.save("new", '{"cuid": "AB1234"}', 0, meta=of("AB1234"))
        assert await keys_of(store, "AB1234") == ["new"]

        await store.sweep(Retention(), time.time())
        assert await keys_of(store, "AB1234") == ["new", "second", "first"]
        assert await store.client.hget(keys.session("odd"), "cuid") == ""
        assert await store.client.pttl(keys.technician("AB1234")) > 0

        # Once per installation: another instance's first sweep reads the marker only.
        await store.client.hdel(keys.session("first"), "cuid")
        other = RedisStore(connect(url), keys=keys)
        try:
            assert await other.index_technicians() == 0
        finally:
            await other.aclose()
        assert await store.client.hget(keys.session("first"), "cuid") is None
    finally:
        await store.aclose()
        delete_prefix(url, keys.prefix)


async def test_redis_indexes_only_its_own_sessions_whatever_its_prefix() -> None:
    url, base = redis_url(), new_prefix()
    mine, theirs = RedisKeys(base + "[a]*?:"), RedisKeys(base + "a:")
    store = RedisStore(connect(url), keys=mine)
    neighbour = RedisStore(connect(url), keys=theirs)
    try:
        for each in (store, neighbour):
            await each.save("k", '{"cuid": "AB1234"}', 0, meta=of("AB1234"))
            await each.client.hdel(each.keys.session("k"), "cuid")
            await each.client.delete(each.keys.technician("AB1234"))
        assert await store.index_technicians() == 1
        assert await keys_of(store, "AB1234") == ["k"]
        assert await keys_of(neighbour, "AB1234") == []  # its own first sweep does that
    finally:
        async for name in store.client.scan_iter(match=glob_escape(base) + "*"):
            await store.client.delete(name)
        await store.aclose()
        await neighbour.aclose()
