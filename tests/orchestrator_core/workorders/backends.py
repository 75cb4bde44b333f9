"""The registry of work-order backends the contract suite runs on, and a PostgreSQL to test on.

Each backend opens a ``WorkOrders`` with its ``AuditLog`` on fresh, empty data;
``second`` opens another handle on the same data (another instance: its own
connection). PostgreSQL is reached at TECHASSIST_TEST_DATABASE_URL (a postgresql:// URL;
default the local server); the suite creates a database of its own, ``techassist_test_<random>``,
and drops it at the end. Without a server the PostgreSQL cases skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from orchestrator_core.audit import AuditLog
from orchestrator_core.pg.migrate import upgrade
from orchestrator_core.pg.workorders import PostgresWorkOrders
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from orchestrator_core.workorders import WorkOrders

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = "technicians, orders, inventory, escalations, audit, tokens, operators"


def admin_url() -> str:
    return os.environ.get("TECHASSIST_TEST_DATABASE_URL") or DEFAULT_ADMIN_URL


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI, where the server must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Handle:
    orders: WorkOrders
    audit: AuditLog


Opener = Callable[[], Awaitable[Handle]]


def _create_database(upgraded: bool = True) -> str:
    """A new database on the test server, upgraded unless told not to; its URL."""
    name = f"techassist_test_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url(), autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    url = urlsplit(admin_url())._replace(path=f"/{name}").geturl()
    if not upgraded:
        return url
    # As `techassist db upgrade` does it; on a thread of its own, as a fixture may be
    # asked for from inside the test's event loop.
    try:
        with ThreadPoolExecutor(1) as thread:
            thread.submit(lambda: asyncio.run(upgrade(url))).result()
    except BaseException:
        _drop_database(url)
        raise
    return url


def _drop_database(url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url(), autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One test database for the session, created upgraded and dropped after."""
    try:
        url = _create_database()
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {admin_url()}: {str(exc).strip().splitlines()[0]}")
        raise AssertionError("unreachable") from None
    try:
        yield url
    finally:
        _drop_database(url)


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A database of the test's own, with no schema yet; dropped after."""
    try:
        url = _create_database(upgraded=False)
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL at {admin_url()}: {str(exc).strip().splitlines()[0]}")
        raise AssertionError("unreachable") from None
    try:
        yield url
    finally:
        _drop_database(url)


@asynccontextmanager
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Opener]:
    opened: list[SqliteWorkOrders] = []

    async def opener() -> Handle:
        db = SqliteWorkOrders(tmp_path / "workorders.db")
        opened.append(db)
        return Handle(db, db.audit_log())

    try:
        yield opener
    finally:
        for db in opened:
            db.close()


@asynccontextmanager
async def postgres_backend(url: str) -> AsyncIterator[Opener]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE".encode())
    opened: list[PostgresWorkOrders] = []

    async def opener() -> Handle:
        db = await PostgresWorkOrders.open(url, min_size=1, max_size=4)
        opened.append(db)
        return Handle(db, db.audit_log())

    try:
        yield opener
    finally:
        for db in opened:
            await db.aclose()


BACKENDS = ["sqlite", "postgres"]
