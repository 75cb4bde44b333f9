"""One contract, every session store: they must behave the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.stores import MemoryStore, SessionStore, SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    backend: SessionStore = (
        MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "sessions.db")
    )
    try:
        yield backend
    finally:
        await backend.aclose()


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
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
