"""The embedded default store: one SQLite file in WAL mode.

It calls ``sqlite3`` synchronously on the event loop. A load or a save is one
tiny indexed statement (about 10 µs with ``synchronous=NORMAL``), while a hop to
a worker thread costs 0.1–0.3 ms, so the hop
would be the most expensive part of the turn. WAL with ``synchronous=NORMAL``
keeps every committed turn through a crash of the process; ``FULL`` is offered
for those who also want to survive a power loss.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orchestrator_core.errors import StaleVersionError, StoreError
from orchestrator_core.locks import Lease
from orchestrator_core.sqlite_wal import Synchronous, WalCheckpointer, connect_wal
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key        TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    data       TEXT NOT NULL,
    updated_at REAL NOT NULL,
    state      TEXT NOT NULL DEFAULT 'active',
    plan_digest TEXT,
    remind_at  REAL,
    cuid       TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    key        TEXT NOT NULL,
    message_id TEXT NOT NULL,
    version    INTEGER NOT NULL,
    replies    TEXT NOT NULL,
    PRIMARY KEY (key, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS plan_snapshots (
    digest     TEXT PRIMARY KEY,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL  -- the last put_snapshot, for sweep's grace
);
"""

# Sessions saved before rows carried their state and plan: classified once, from their data.
_MIGRATE = """
ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE sessions ADD COLUMN plan_digest TEXT;
UPDATE sessions SET
    state = CASE
        WHEN json_extract(data, '$.cuid') IS NULL THEN 'unidentified'
        WHEN json_extract(data, '$.phase') = 'ended' THEN 'ended'
        ELSE 'active' END,
    plan_digest = json_extract(data, '$.plan_digest')
WHERE json_valid(data);
"""

# Sessions saved before reminders: a column, then the indexes of scan and due.
_INDEXES = """
CREATE INDEX IF NOT EXISTS sessions_recent ON sessions (updated_at);
CREATE INDEX IF NOT EXISTS sessions_due ON sessions (remind_at) WHERE remind_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS sessions_cuid ON sessions (cuid, updated_at) WHERE cuid IS NOT NULL;
"""

# Sessions saved before the index by technician: the column, filled from their data.
_ADD_CUID = """
ALTER TABLE sessions ADD COLUMN cuid TEXT;
UPDATE sessions SET cuid = json_extract(data, '$.cuid')
WHERE CASE WHEN json_valid(data) THEN json_type(data, '$.cuid') = 'text' ELSE 0 END;
"""

_EXPIRED = """
    (state = 'unidentified' AND updated_at <= :unidentified)
    OR (state = 'ended' AND updated_at <= :ended)
    OR (state NOT IN ('unidentified', 'ended') AND updated_at <= :idle)
"""


class SqliteStore(SessionStore):
    """Sessions in one SQLite file; versioned saves are a conditional UPDATE."""

    def __init__(self, path: Path, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = path
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = connect_wal(path, synchronous=synchronous)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if columns and "state" not in columns:
                self._db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE} COMMIT;")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if "remind_at" not in columns:
                self._db.execute("ALTER TABLE sessions ADD COLUMN remind_at REAL")
            if "cuid" not in columns:
                self._add_cuid()
            self._db.executescript(_INDEXES)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open session store {path}: {exc}") from exc
        self._checkpointer = WalCheckpointer(path)

    def _add_cuid(self) -> None:
        """Give a file from before the index by technician its column, filled in once; under
        a write lock, so two processes opening the same old file add it once."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
            if "cuid" not in columns:
                for statement in _ADD_CUID.split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def load(self, key: str) -> StoredSession | None:
        try:
            row = self._db.execute(
                "SELECT data, version FROM sessions WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot load session {key!r}: {exc}") from exc
        return StoredSession(row[0], row[1]) if row else None

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
        new_version = expected_version + 1
        db = self._db
        try:
            if answer is not None or snapshot is not None:
                # The session, its answer and its snapshot commit together, or none does.
                db.execute("BEGIN IMMEDIATE")
            if expected_version == 0:
                cur = db.execute(
                    "INSERT INTO sessions"
                    " (key, version, data, updated_at, state, plan_digest, remind_at, cuid)"
                    " VALUES (?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING",
                    (
                        key,
                        data,
                        time.time(),
                        meta.state,
                        meta.plan_digest,
                        meta.remind_at,
                        meta.cuid,
                    ),
                )
            else:
                cur = db.execute(
                    "UPDATE sessions SET version = ?, data = ?, updated_at = ?, state = ?,"
                    " plan_digest = ?, remind_at = ?, cuid = ? WHERE key = ? AND version = ?",
                    (
                        new_version,
                        data,
                        time.time(),
                        meta.state,
                        meta.plan_digest,
                        meta.remind_at,
                        meta.cuid,
                        key,
                        expected_version,
                    ),
                )
            if cur.rowcount == 1:
                if answer is not None:
                    self._keep_answer(key, answer, new_version)
                if snapshot is not None and meta.plan_digest is not None:
                    self._put_snapshot(meta.plan_digest, snapshot)
                if db.in_transaction:
                    db.execute("COMMIT")
                return new_version
            row = db.execute("SELECT version FROM sessions WHERE key = ?", (key,)).fetchone()
            if db.in_transaction:
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot save session {key!r}: {exc}") from exc
        raise StaleVersionError(key, expected_version, row[0] if row else None)

    def _keep_answer(self, key: str, answer: Answer, version: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO answers (key, message_id, version, replies)"
            " VALUES (?, ?, ?, ?)",
            (key, answer.message_id, version, answer.replies),
        )
        if version % ANSWERS_KEPT == 0:
            # Pruned every ANSWERS_KEPT saves, so between 16 and 31 are kept.
            self._db.execute(
                "DELETE FROM answers WHERE key = ? AND version <= ?",
                (key, version - ANSWERS_KEPT),
            )

    async def answered(self, key: str, message_id: str) -> str | None:
        try:
            row = self._db.execute(
                "SELECT replies FROM answers WHERE key = ? AND message_id = ?", (key, message_id)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the answers of {key!r}: {exc}") from exc
        return row[0] if row else None

    async def put_snapshot(self, digest: str, data: str) -> None:
        try:
            self._put_snapshot(digest, data)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot keep plan snapshot {digest}: {exc}") from exc

    def _put_snapshot(self, digest: str, data: str) -> None:
        self._db.execute(
            "INSERT INTO plan_snapshots (digest, data, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT(digest) DO UPDATE SET created_at = excluded.created_at",
            (digest, data, time.time()),
        )

    async def get_snapshot(self, digest: str) -> str | None:
        try:
            row = self._db.execute(
                "SELECT data FROM plan_snapshots WHERE digest = ?", (digest,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read plan snapshot {digest}: {exc}") from exc
        return row[0] if row else None

    async def delete(self, key: str) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM sessions WHERE key = ?", (key,))
            self._db.execute("DELETE FROM answers WHERE key = ?", (key,))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot delete session {key!r}: {exc}") from exc

    async def scan(self, *, limit: int = 1000) -> list[SessionSummary]:
        return self._summaries("", (limit,), f"the sessions of {self.path}")

    async def sessions_of(self, cuid: str, *, limit: int = 50) -> list[SessionSummary]:
        return self._summaries(
            "WHERE cuid = ?", (cuid, max(limit, 0)), "the sessions of a technician"
        )

    def _summaries(self, where: str, params: tuple[object, ...], what: str) -> list[SessionSummary]:
        """The sessions ``where`` selects, most recently saved first (the last parameter is
        the limit); ``what`` names them in an error."""
        try:
            rows = self._db.execute(
                "SELECT key, data, version, updated_at FROM sessions"
                f" {where} ORDER BY updated_at DESC LIMIT ?",
                params,
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot list {what}: {exc}") from exc
        return [SessionSummary(row[0], row[1], row[2], row[3]) for row in rows]

    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        try:
            rows = self._db.execute(
                "SELECT key FROM sessions WHERE remind_at IS NOT NULL AND remind_at <= ?"
                " ORDER BY remind_at LIMIT ?",
                (now, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot list the sessions due a reminder: {exc}") from exc
        return [row[0] for row in rows]

    async def sweep(self, retention: Retention, now: float) -> Swept:
        cutoffs = {
            "unidentified": now - retention.unidentified,
            "ended": now - retention.ended,
            "idle": now - retention.idle,
        }
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                f"DELETE FROM answers WHERE key IN (SELECT key FROM sessions WHERE {_EXPIRED})",
                cutoffs,
            )
            sessions = db.execute(f"DELETE FROM sessions WHERE {_EXPIRED}", cutoffs).rowcount
            snapshots = db.execute(
                "DELETE FROM plan_snapshots WHERE created_at <= ? AND digest NOT IN"
                " (SELECT plan_digest FROM sessions WHERE plan_digest IS NOT NULL)",
                (now - SNAPSHOT_GRACE,),
            ).rowcount
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StoreError(f"cannot sweep the session store {self.path}: {exc}") from exc
        return Swept(sessions=sessions, snapshots=snapshots)

    async def ping(self) -> None:
        try:
            self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"session store {self.path} is not reachable: {exc}") from exc

    async def aclose(self) -> None:
        self._checkpointer.close()
        self._db.close()
