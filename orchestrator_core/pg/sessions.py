"""Sessions on PostgreSQL, for operators who run no Redis (``TECHASSIST_STORE=postgresql://…``).

``PostgresStore`` keeps a session as one row (data, version, state, plan digest,
time of the save); a versioned save is one transaction: ``UPDATE … WHERE key AND
version`` (an ``INSERT`` for version 0), the answer beside it, the answers older
than the last ``ANSWERS_KEPT`` saves deleted. ``PostgresLock`` holds a lease row
per session (key, random token, expiry), taken by an upsert that only
overwrites an expired row, released and renewed by token; unlike
``pg_advisory_xact_lock`` it has a lifetime and holds no pooled connection
while the turn runs. ``PostgresSeen`` records processed ids as unique rows with
an expiry. All three share one connection pool, opened on first use.

The tables come from ``migrations/002_sessions.sql`` (``techassist db upgrade``), with
the due time of ``005`` and the CUID of ``006``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from orchestrator_core.errors import (
    LockError,
    LockUnavailable,
    StaleVersionError,
    StoreError,
    StoreUnavailable,
)
from orchestrator_core.locks import DEFAULT_LIFETIME, DEFAULT_WAIT, Lease, SessionLock
from orchestrator_core.pg.pool import Pool, unreachable
from orchestrator_core.stores.base import (
    ANSWERS_KEPT,
    SNAPSHOT_GRACE,
    Answer,
    Retention,
    SessionMeta,
    SessionStore,
    SessionSummary,
    StoredSession,
    Swept,
)

#: What a failing database call raises underneath.
DB_ERRORS = (psycopg.Error, PoolTimeout)


def reason(exc: BaseException) -> str:
    """The first line of a database error: enough to act on, never a connection string."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def store_error(doing: str, exc: BaseException) -> StoreError:
    """The ``StoreError`` for a failed call: ``StoreUnavailable`` when the server could not be
    reached (connection refused or lost, no connection in time)."""
    kind = StoreUnavailable if unreachable(exc) else StoreError
    return kind(f"{doing}: {reason(exc)}")


def _lock_error(doing: str, exc: BaseException) -> LockError:
    """The ``LockError`` for a failed call: ``LockUnavailable`` when the server is unreachable."""
    kind = LockUnavailable if unreachable(exc) else LockError
    return kind(f"{doing}: {reason(exc)}")


class PostgresPool:
    """A psycopg async pool on ``conninfo``, opened on first use; store, lock, seen and
    owners share it."""

    def __init__(self, conninfo: str, *, max_size: int = 10, timeout: float = 10.0) -> None:
        self.conninfo = conninfo
        """Where the pool connects; a listener that must keep its connection opens its own."""
        self._pool = Pool(
            conninfo,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=timeout,
            kwargs={"autocommit": True},
        )
        self._opened = False
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if not self._opened:
            if self._closed:
                raise psycopg.OperationalError("the session store is closed")
            self._opened = True
            await self._pool.open(wait=False)
        async with self._pool.connection() as conn:
            yield conn

    async def aclose(self) -> None:
        self._closed = True
        if self._opened:
            await self._pool.close()


class PostgresStore(SessionStore):
    """Sessions in PostgreSQL; a versioned save is one transaction.

    ``save`` with a ``lease`` also checks and releases the turn's lease row in
    the same transaction: it refuses the save with ``LockError`` if another
    holder has the lease, as ``RedisStore`` does.
    """

    def __init__(self, pool: PostgresPool, *, owns_pool: bool = True) -> None:
        self.pool = pool
        self._owns_pool = owns_pool

    async def load(self, key: str) -> StoredSession | None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT data, version FROM sessions WHERE key = %s", (key,)
                )
                row = await cur.fetchone()
        except DB_ERRORS as exc:
            raise store_error(f"cannot load session {key!r}", exc) from exc
        return None if row is None else StoredSession(str(row[0]), int(row[1]))

    async def save(
        self,
        key: str,
        data: str,
        expected_version: int,
        *,
        answer: Answer | None = None,
        meta: SessionMeta = SessionMeta(),  # noqa: B008 - frozen, shared safely
        lease: Lease | None = None,
        snapshot: str | None = None,
    ) -> int:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                version = await self._save(conn, key, data, expected_version, answer, meta, lease)
                if snapshot is not None and meta.plan_digest is not None:
                    await _put_snapshot(conn, meta.plan_digest, snapshot)
                return version
        except DB_ERRORS as exc:
            raise store_error(f"cannot save session {key!r}", exc) from exc

    async def _save(
        self,
        conn: psycopg.AsyncConnection[Any],
        key: str,
        data: str,
        expected: int,
        answer: Answer | None,
        meta: SessionMeta,
        lease: Lease | None,
    ) -> int:
        if lease is not None:
            cur = await conn.execute(
                "SELECT token FROM session_leases"
                " WHERE key = %s AND expires_at > clock_timestamp() FOR UPDATE",
                (key,),
            )
            holder = await cur.fetchone()
            if holder is not None and holder[0] != lease.token:
                lease.lost = True
                raise LockError(f"the lease on {key!r} was taken over; the save was refused")
        row = (data, meta.state, meta.plan_digest, meta.remind_at, meta.cuid, time.time(), key)
        if expected == 0:
            cur = await conn.execute(
                "INSERT INTO sessions"
                " (data, version, state, plan_digest, remind_at, cuid, saved_at, key)"
                " VALUES (%s, 1, %s, %s, %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
                " RETURNING version",
                row,
            )
        else:
            cur = await conn.execute(
                "UPDATE sessions SET data = %s, version = version + 1, state = %s,"
                " plan_digest = %s, remind_at = %s, cuid = %s, saved_at = %s"
                " WHERE key = %s AND version = %s RETURNING version",
                (*row, expected),
            )
        saved = await cur.fetchone()
        if saved is None:
            cur = await conn.execute("SELECT version FROM sessions WHERE key = %s", (key,))
            actual = await cur.fetchone()
            raise StaleVersionError(key, expected, None if actual is None else int(actual[0]))
        version = int(saved[0])
        if answer is not None:
            await conn.execute(
                "INSERT INTO session_answers (key, message_id, version, replies)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (key, message_id)"
                " DO UPDATE SET version = EXCLUDED.version, replies = EXCLUDED.replies",
                (key, answer.message_id, version, answer.replies),
            )
            await conn.execute(
                "DELETE FROM session_answers WHERE key = %s AND version <= %s",
                (key, version - ANSWERS_KEPT),
            )
        if lease is not None:
            cur = await conn.execute(
                "DELETE FROM session_leases WHERE key = %s AND token = %s", (key, lease.token)
            )
            lease.released = cur.rowcount == 1
        return version

    async def answered(self, key: str, message_id: str) -> str | None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT replies FROM session_answers WHERE key = %s AND message_id = %s",
                    (key, message_id),
                )
                row = await cur.fetchone()
        except DB_ERRORS as exc:
            raise store_error(f"cannot read the answers of {key!r}", exc) from exc
        return None if row is None else str(row[0])

    async def delete(self, key: str) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("DELETE FROM sessions WHERE key = %s", (key,))
                await conn.execute("DELETE FROM session_answers WHERE key = %s", (key,))
        except DB_ERRORS as exc:
            raise store_error(f"cannot delete session {key!r}", exc) from exc

    async def put_snapshot(self, digest: str, data: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await _put_snapshot(conn, digest, data)
        except DB_ERRORS as exc:
            raise store_error(f"cannot keep plan snapshot {digest}", exc) from exc

    async def get_snapshot(self, digest: str) -> str | None:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT data FROM plan_snapshots WHERE digest = %s", (digest,)
                )
                row = await cur.fetchone()
        except DB_ERRORS as exc:
            raise store_error(f"cannot read plan snapshot {digest}", exc) from exc
        return None if row is None else str(row[0])

    async def scan(self, *, limit: int = 1000) -> list[SessionSummary]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT key, data, version, saved_at FROM sessions"
                    " ORDER BY saved_at DESC LIMIT %s",
                    (max(limit, 0),),
                )
                rows = await cur.fetchall()
        except DB_ERRORS as exc:
            raise store_error("cannot list the sessions", exc) from exc
        return [SessionSummary(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

    async def sessions_of(self, cuid: str, *, limit: int = 50) -> list[SessionSummary]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT key, data, version, saved_at FROM sessions"
                    " WHERE cuid = %s ORDER BY saved_at DESC LIMIT %s",
                    (cuid, max(limit, 0)),
                )
                rows = await cur.fetchall()
        except DB_ERRORS as exc:
            raise store_error("cannot list the sessions of a technician", exc) from exc
        return [SessionSummary(str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows]

    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT key FROM sessions WHERE remind_at <= %s ORDER BY remind_at LIMIT %s",
                    (now, max(limit, 0)),
                )
                rows = await cur.fetchall()
        except DB_ERRORS as exc:
            raise store_error("cannot list the sessions due a reminder", exc) from exc
        return [str(row[0]) for row in rows]

    async def sweep(self, retention: Retention, now: float) -> Swept:
        cutoffs = (
            now - retention.unidentified,
            now - retention.ended,
            now - retention.idle,
        )
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "WITH gone AS (DELETE FROM sessions WHERE"
                    " (state = 'unidentified' AND saved_at < %s)"
                    " OR (state = 'ended' AND saved_at < %s)"
                    " OR (state NOT IN ('unidentified', 'ended') AND saved_at < %s)"
                    " RETURNING key),"
                    " answers AS (DELETE FROM session_answers"
                    " WHERE key IN (SELECT key FROM gone))"
                    " SELECT count(*) FROM gone",
                    cutoffs,
                )
                sessions = await cur.fetchone()
                cur = await conn.execute(
                    "DELETE FROM plan_snapshots p WHERE put_at < %s AND NOT EXISTS"
                    " (SELECT 1 FROM sessions s WHERE s.plan_digest = p.digest)",
                    (now - SNAPSHOT_GRACE,),
                )
                snapshots = cur.rowcount
                # Leases and processed ids left behind expire by the server's clock.
                await conn.execute("DELETE FROM session_leases WHERE expires_at < now()")
                await conn.execute("DELETE FROM seen_ids WHERE expires_at < now()")
        except DB_ERRORS as exc:
            raise store_error("cannot sweep the session store", exc) from exc
        return Swept(sessions=int(sessions[0]) if sessions else 0, snapshots=max(snapshots, 0))

    async def ping(self) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute("SELECT 1 FROM sessions LIMIT 1")
        except DB_ERRORS as exc:
            raise store_error("the PostgreSQL session store is not reachable", exc) from exc

    async def aclose(self) -> None:
        if self._owns_pool:
            await self.pool.aclose()


async def _put_snapshot(conn: psycopg.AsyncConnection[Any], digest: str, data: str) -> None:
    """Keep a snapshot write-once: a known digest keeps its data and only renews its time."""
    await conn.execute(
        "INSERT INTO plan_snapshots (digest, data, put_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (digest) DO UPDATE SET put_at = EXCLUDED.put_at",
        (digest, data, time.time()),
    )


_TAKE = (
    "INSERT INTO session_leases (key, token, expires_at)"
    " VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))"
    " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at"
    " WHERE session_leases.expires_at < clock_timestamp()"
    " RETURNING token"
)


class PostgresLock(SessionLock):
    """Leases as rows: ``INSERT … ON CONFLICT (key) DO UPDATE … WHERE expired``, by token.

    A waiter polls with a short, growing, jittered backoff (5 ms up to 100 ms).
    Only the token that took a lease releases or renews it; a lease whose
    holder stopped is taken over once its ``expires_at`` has passed.
    """

    def __init__(
        self,
        pool: PostgresPool,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        wait: float = DEFAULT_WAIT,
        renew: bool = True,
    ) -> None:
        super().__init__(lifetime=lifetime, wait=wait, renew=renew)
        self.pool = pool

    async def _acquire(self, lease: Lease) -> None:
        key = lease.key

        async def take() -> bool:
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(_TAKE, (key, lease.token, self.lifetime))
                    return await cur.fetchone() is not None
            except DB_ERRORS as exc:
                raise _lock_error(f"cannot lock session {key!r}", exc) from exc

        await self._poll(key, take)

    async def _release(self, key: str, token: str) -> bool:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "DELETE FROM session_leases WHERE key = %s AND token = %s"
                    " RETURNING expires_at > clock_timestamp()",
                    (key, token),
                )
                row = await cur.fetchone()
        except DB_ERRORS as exc:
            raise _lock_error(f"cannot release the lock on {key!r}", exc) from exc
        return row is not None and bool(row[0])

    async def _renew(self, key: str, token: str) -> bool:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE session_leases"
                    " SET expires_at = clock_timestamp() + make_interval(secs => %s)"
                    " WHERE key = %s AND token = %s AND expires_at > clock_timestamp()",
                    (self.lifetime, key, token),
                )
        except DB_ERRORS as exc:
            raise _lock_error(f"cannot renew the lock on {key!r}", exc) from exc
        return cur.rowcount == 1


_FIRST = (
    "INSERT INTO seen_ids AS s (id, expires_at, fresh)"
    " SELECT id, clock_timestamp() + make_interval(secs => %s), TRUE FROM unnest(%s::text[]) AS id"
    " ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at,"
    " fresh = s.expires_at <= clock_timestamp()"
    " RETURNING fresh"
)


class PostgresSeen:
    """Processed ids as unique rows with an expiry, shared by every instance on the database.

    One statement records all the ids given together: each is inserted, or its
    row (locked by the upsert, so racing callers queue) renewed; the answer is
    True only if every row was new or had expired.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    async def first(self, id: str, ttl: float, *, also: Sequence[str] = ()) -> bool:
        ids = sorted({id, *also})  # one order for everyone: no deadlock between callers
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(_FIRST, (ttl, ids))
                rows = await cur.fetchall()
        except DB_ERRORS as exc:
            raise store_error(f"cannot check whether {id!r} was seen", exc) from exc
        return len(rows) == len(ids) and all(bool(row[0]) for row in rows)
