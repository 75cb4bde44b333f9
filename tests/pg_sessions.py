"""A PostgreSQL database for the session store, lock and seen contracts.

One database per test process, ``techassist_test_<random>`` on the test server
(TECHASSIST_TEST_DATABASE_URL, default the local one), created upgraded on
first use and dropped when the process ends; each test empties the session
tables first. Without a server the tests skip, except under ``CI=true``, where
they fail.
"""

from __future__ import annotations

import atexit
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from orchestrator_core.pg.sessions import PostgresPool
from tests.orchestrator_core.workorders.backends import (
    _create_database,
    _drop_database,
    admin_url,
    unavailable,
)

TABLES = "sessions, session_answers, plan_snapshots, session_leases, seen_ids, connection_owners"
_url: list[str] = []


def sessions_url() -> str:
    """The process's test database, created on first use; skips (fails under CI) without one."""
    if not _url:
        try:
            _url.append(_create_database())
        except psycopg.OperationalError as exc:
            unavailable(f"no PostgreSQL at {admin_url()}: {str(exc).strip().splitlines()[0]}")
        atexit.register(_drop_database, _url[0])
    return _url[0]


@asynccontextmanager
async def empty_pool() -> AsyncIterator[PostgresPool]:
    """A pool on the test database with the session tables emptied; closed after."""
    url = sessions_url()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"TRUNCATE {TABLES}".encode())
    pool = PostgresPool(url)
    try:
        yield pool
    finally:
        await pool.aclose()
