"""Work orders and the tool audit in one SQLite file: the embedded backend.

``SqliteWorkOrders`` implements ``WorkOrders`` and ``SqliteAuditLog`` implements
``AuditLog``; the audit shares the work orders' file and connection.

Synchronous inside on purpose, behind async methods: every statement here is
tiny and indexed, and such a statement measured at ~10 µs against ~300 µs for
a hop to a thread (aiosqlite or ``asyncio.to_thread``), so running it on the
event loop blocks the loop for less than the hop itself would cost. That
reasoning holds for a local file only: a network database gets a truly
asynchronous driver. WAL with ``synchronous=NORMAL`` survives a killed
process. sqlite3 errors leave this module as ``WorkOrderError``.

Ids and e-mail addresses compare case-insensitively (``COLLATE NOCASE``) and are
stored as given; timestamps are stored as ISO 8601 UTC text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator_core.audit import AUDIT_RESULT, audit_json
from orchestrator_core.errors import InventoryConflict, WorkOrderError
from orchestrator_core.orders import (
    CLOSED_STATUSES,
    INVENTORY_STATUSES,
    ORDER_STATUSES,
    InventoryItem,
    InventoryRecord,
    Order,
    Technician,
    as_utc,
    prioritize,
)
from orchestrator_core.sqlite_wal import Synchronous, WalCheckpointer, connect_wal
from orchestrator_core.workorders import escalation_number

_SCHEMA = """
CREATE TABLE IF NOT EXISTS technicians (
    cuid TEXT PRIMARY KEY COLLATE NOCASE,
    name TEXT NOT NULL,
    email TEXT COLLATE NOCASE,
    slack_user_id TEXT
);
CREATE INDEX IF NOT EXISTS technicians_email ON technicians (email);
CREATE INDEX IF NOT EXISTS technicians_slack ON technicians (slack_user_id);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY COLLATE NOCASE,
    cuid TEXT NOT NULL COLLATE NOCASE REFERENCES technicians (cuid),
    order_type TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_start TEXT NOT NULL,
    scheduled_end TEXT,
    created_at TEXT NOT NULL,
    customer_name TEXT NOT NULL,
    address TEXT NOT NULL,
    service_tier TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT '',
    closed_at TEXT
);
CREATE INDEX IF NOT EXISTS orders_cuid ON orders (cuid, status);
CREATE TABLE IF NOT EXISTS inventory (
    serial TEXT PRIMARY KEY COLLATE NOCASE,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    order_id TEXT COLLATE NOCASE REFERENCES orders (order_id)
);
CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cuid TEXT NOT NULL COLLATE NOCASE,
    order_id TEXT COLLATE NOCASE,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalations_by_cuid ON escalations (cuid, created_at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: it costs an extra write per tool call
    at TEXT NOT NULL,
    session_id TEXT NOT NULL,
    order_id TEXT,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    try_no INTEGER NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error_kind TEXT,
    result TEXT NOT NULL,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_call ON audit (session_id, step_id, attempt);
-- Technicians' credentials: websocket tokens and one-time Slack codes, by their digest only.
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY,
    cuid TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_cuid ON tokens (cuid, kind);
-- Dispatchers' accounts for the console: argon2 hashes only.
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""

#: Columns the dispatcher's queue added to ``escalations``: added to an older file on open,
#: so its rows stay readable (as open escalations with no context).
_ESCALATION_COLUMNS = {
    "status": "TEXT NOT NULL DEFAULT 'open'",
    "operator": "TEXT",
    "answer": "TEXT",
    "session_key": "TEXT",
    "step": "TEXT",
    "step_no": "INTEGER",
    "step_of": "INTEGER",
    "words": "TEXT",
    "params": "TEXT NOT NULL DEFAULT '{}'",
    "updated_at": "TEXT",
    "outcome": "TEXT",
}


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a file made by an earlier version up to this schema; idempotent."""
    have = {str(row[1]) for row in conn.execute("PRAGMA table_info(escalations)")}
    for name, kind in _ESCALATION_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE escalations ADD COLUMN {name} {kind}")
    conn.execute("CREATE INDEX IF NOT EXISTS escalations_by_status ON escalations (status, id)")
    conn.execute("CREATE INDEX IF NOT EXISTS audit_by_order ON audit (order_id COLLATE NOCASE)")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _instant(value: datetime) -> str:
    """A UTC time as fixed-width ISO 8601 text, so that text order is time order."""
    return as_utc(value).isoformat(timespec="microseconds")


_stamp: tuple[int, str] = (0, "")


def _now() -> str:
    """The current UTC time to the second, as ISO 8601 text (formatted once per second)."""
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds"))
    return _stamp[1]


class SqliteWorkOrders:
    """The work orders in one SQLite file (``WorkOrders``); the schema is created on open."""

    def __init__(self, path: Path, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE below), so
        # a read never holds a lock and a write never upgrades one mid-way.
        # check_same_thread=False with our own lock lets a CLI or test thread use it too.
        try:
            self._conn = connect_wal(self.path, synchronous=synchronous)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            _upgrade(self._conn)
        except sqlite3.Error as exc:
            raise WorkOrderError(f"cannot open the work-order database {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._checkpointer = WalCheckpointer(self.path) if str(path) != ":memory:" else None

    def audit_log(self) -> SqliteAuditLog:
        """The tool audit in the same file, on the same connection."""
        return SqliteAuditLog(self)

    def close(self) -> None:
        """Close the connection; the object (and its audit log) is unusable afterwards."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._conn.close()

    async def aclose(self) -> None:
        self.close()

    async def ping(self) -> None:
        """Two reads: one on the open connection (a closed or locked database fails it),
        and one on the file at ``path``, opened afresh: an open SQLite connection
        answers from its cache and from the file it opened, even after that file was
        deleted, replaced or truncated."""
        self._query("SELECT 1")
        if str(self.path) == ":memory:":
            return
        try:
            fresh = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0
            )
            try:
                fresh.execute("SELECT 1 FROM technicians LIMIT 1").fetchall()
            finally:
                fresh.close()
        except (sqlite3.Error, OSError) as exc:
            raise WorkOrderError(f"{self.path}: {exc}") from exc

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; sqlite3 errors leave as WorkOrderError."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise WorkOrderError(f"work-order database error: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise WorkOrderError(f"work-order database error: {exc}") from exc
                raise

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise WorkOrderError(f"work-order database error: {exc}") from exc

    # ------------------------------------------------------------------ import

    async def is_empty(self) -> bool:
        return not self._query("SELECT 1 FROM technicians LIMIT 1")

    async def upsert(
        self,
        technicians: Sequence[Technician],
        orders: Sequence[Order],
        inventory: Sequence[InventoryRecord],
    ) -> int:
        with self._write() as db:
            known = {t.cuid.casefold() for t in technicians}
            missing = []
            for index, order in enumerate(orders):
                if order.cuid.casefold() in known:
                    continue
                if db.execute("SELECT 1 FROM technicians WHERE cuid = ?", (order.cuid,)).fetchone():
                    known.add(order.cuid.casefold())
                    continue
                missing.append(
                    f"orders[{index}] (order_id={order.order_id}): cuid: no technician "
                    f"{order.cuid!r} in the file or the database"
                )
            if missing:
                raise WorkOrderError("invalid import data:\n" + "\n".join(missing))
            updated = 0
            for tech in technicians:
                updated += self._exists(db, "technicians", "cuid", tech.cuid)
                db.execute(
                    "INSERT INTO technicians (cuid, name, email, slack_user_id) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (cuid) DO UPDATE SET name = excluded.name,"
                    " email = excluded.email, slack_user_id = excluded.slack_user_id",
                    (tech.cuid, tech.name, tech.email, tech.slack_user_id),
                )
            for order in orders:
                updated += self._exists(db, "orders", "order_id", order.order_id)
                # A closed order keeps the closed_at it was given, else its first one.
                closed_at = _iso(order.closed_at)
                db.execute(
                    "INSERT INTO orders (order_id, cuid, order_type, status, scheduled_start,"
                    " scheduled_end, created_at, customer_name, address, service_tier, details,"
                    " notes, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (order_id) DO UPDATE SET cuid = excluded.cuid,"
                    " order_type = excluded.order_type, status = excluded.status,"
                    " scheduled_start = excluded.scheduled_start,"
                    " scheduled_end = excluded.scheduled_end, created_at = excluded.created_at,"
                    " customer_name = excluded.customer_name, address = excluded.address,"
                    " service_tier = excluded.service_tier, details = excluded.details,"
                    " notes = CASE WHEN excluded.notes = '' THEN orders.notes"
                    " ELSE excluded.notes END,"
                    " closed_at = CASE WHEN excluded.status IN ('completed', 'cancelled')"
                    " THEN coalesce(?, orders.closed_at, excluded.closed_at) END",
                    (
                        order.order_id,
                        order.cuid,
                        order.order_type,
                        order.status,
                        _iso(order.scheduled_start),
                        _iso(order.scheduled_end),
                        _iso(order.created_at),
                        order.customer_name,
                        order.address,
                        order.service_tier,
                        json.dumps(order.details),
                        order.notes,
                        (closed_at or _now()) if order.status in CLOSED_STATUSES else None,
                        closed_at,
                    ),
                )
            for item in inventory:
                updated += self._exists(db, "inventory", "serial", item.serial)
                # Only an available item forgets which order it was on.
                db.execute(
                    "INSERT INTO inventory (serial, model, status) VALUES (?, ?, ?)"
                    " ON CONFLICT (serial) DO UPDATE SET model = excluded.model,"
                    " status = excluded.status, order_id = CASE WHEN excluded.status ="
                    " 'available' THEN NULL ELSE inventory.order_id END",
                    (item.serial, item.model, item.status),
                )
        return updated

    @staticmethod
    def _exists(db: sqlite3.Connection, table: str, column: str, value: str) -> int:
        row = db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone()
        return 1 if row else 0

    # ------------------------------------------------------------------ technicians

    async def get_technician(self, cuid: str) -> Technician | None:
        """The technician with this CUID (any case), or None."""
        rows = self._query("SELECT * FROM technicians WHERE cuid = ?", (cuid.strip(),))
        return Technician(**dict(rows[0])) if rows else None

    async def find_technician_by_slack(self, slack_user_id: str) -> Technician | None:
        """The technician mapped to this Slack user id, or None."""
        rows = self._query(
            "SELECT * FROM technicians WHERE slack_user_id = ? ORDER BY cuid LIMIT 1",
            (slack_user_id,),
        )
        return Technician(**dict(rows[0])) if rows else None

    async def find_technician_by_email(self, email: str) -> Technician | None:
        """Look a technician up by e-mail address, ignoring case."""
        rows = self._query(
            "SELECT * FROM technicians WHERE email = ? ORDER BY cuid LIMIT 1", (email.strip(),)
        )
        return Technician(**dict(rows[0])) if rows else None

    # ------------------------------------------------------------------ orders

    @staticmethod
    def _order(row: sqlite3.Row) -> Order:
        fields = dict(row)
        fields["details"] = json.loads(fields["details"])
        return Order(**fields)

    async def list_orders(self, cuid: str) -> list[Order]:
        """All of a technician's orders, whatever their status, by scheduled start."""
        rows = self._query(
            "SELECT * FROM orders WHERE cuid = ? ORDER BY scheduled_start, order_id",
            (cuid.strip(),),
        )
        return [self._order(row) for row in rows]

    async def open_orders(self, cuid: str) -> list[Order]:
        """A technician's assigned and in-progress orders, most urgent first."""
        rows = self._query(
            "SELECT * FROM orders WHERE cuid = ? AND status IN ('assigned', 'in_progress')",
            (cuid.strip(),),
        )
        return prioritize(self._order(row) for row in rows)

    async def get_order(self, order_id: str) -> Order | None:
        """The order with this id (any case), whatever its status, or None."""
        rows = self._query("SELECT * FROM orders WHERE order_id = ?", (order_id.strip(),))
        return self._order(rows[0]) if rows else None

    async def set_order_status(self, order_id: str, status: str, note: str = "") -> Order:
        """Move an order to ``status``, appending ``note`` to its notes; return the order.

        Closing (completed, cancelled) records ``closed_at`` once; reopening clears it.
        Whether a move makes sense is the tools' business: this is also the admin path.
        """
        if status not in ORDER_STATUSES:
            raise WorkOrderError(
                f"unknown order status {status!r}; expected one of {', '.join(ORDER_STATUSES)}"
            )
        line = f"{_now()} [{status}] {note.strip()}" if note.strip() else ""
        with self._write() as db:
            cur = db.execute(
                "UPDATE orders SET status = ?,"
                " closed_at = CASE WHEN ? THEN coalesce(closed_at, ?) END,"
                " notes = CASE WHEN ? = '' THEN notes WHEN notes = '' THEN ?"
                " ELSE notes || char(10) || ? END"
                " WHERE order_id = ?",
                (status, status in CLOSED_STATUSES, _now(), line, line, line, order_id.strip()),
            )
            if cur.rowcount == 0:
                raise WorkOrderError(f"no order {order_id!r}")
        order = await self.get_order(order_id)
        assert order is not None
        return order

    # ------------------------------------------------------------------ inventory

    async def get_inventory(self, serial: str) -> InventoryItem | None:
        """The inventory item with this serial (any case), or None."""
        rows = self._query("SELECT * FROM inventory WHERE serial = ?", (serial.strip(),))
        return InventoryItem(**dict(rows[0])) if rows else None

    async def inventory_on_order(self, order_id: str) -> list[InventoryItem]:
        """The items recorded against an order (installed there, or removed as faulty)."""
        rows = self._query(
            "SELECT * FROM inventory WHERE order_id = ? ORDER BY serial", (order_id.strip(),)
        )
        return [InventoryItem(**dict(row)) for row in rows]

    async def set_inventory_status(
        self,
        serial: str,
        status: str,
        order_id: str | None = None,
        *,
        expected: Collection[str] | None = None,
    ) -> None:
        """Set an item's status; ``order_id`` says which order it is on or came from.

        Without an order id, an available item forgets its order and any other keeps it.
        """
        if status not in INVENTORY_STATUSES:
            raise WorkOrderError(
                f"unknown inventory status {status!r}; "
                f"expected one of {', '.join(INVENTORY_STATUSES)}"
            )
        with self._write() as db:
            # BEGIN IMMEDIATE holds the file's write lock: nothing moves the item in between.
            if expected is not None:
                row = db.execute(
                    "SELECT status FROM inventory WHERE serial = ?", (serial.strip(),)
                ).fetchone()
                if row is not None and row["status"] not in expected:
                    raise InventoryConflict(serial, str(row["status"]))
            cur = db.execute(
                "UPDATE inventory SET status = ?, order_id = CASE WHEN ? IS NOT NULL THEN ?"
                " WHEN ? = 'available' THEN NULL ELSE order_id END WHERE serial = ?",
                (status, order_id, order_id, status, serial.strip()),
            )
            if cur.rowcount == 0:
                raise WorkOrderError(f"no inventory item {serial!r}")

    # ------------------------------------------------------------------ escalations

    async def add_escalation(
        self,
        cuid: str,
        order_id: str | None,
        kind: str,
        reason: str,
        *,
        session_key: str | None = None,
        step: str | None = None,
        step_no: int | None = None,
        step_of: int | None = None,
        words: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Record that a human is needed; return its id, like ESC-0001."""
        now = _now()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO escalations (cuid, order_id, kind, reason, created_at, status,"
                " session_key, step, step_no, step_of, words, params, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?)",
                (
                    cuid,
                    order_id,
                    kind,
                    reason,
                    now,
                    session_key,
                    step,
                    step_no,
                    step_of,
                    words,
                    json.dumps(dict(params or {}), default=str),
                    now,
                ),
            )
            number = cur.lastrowid
        return f"ESC-{number:04d}"

    async def count_escalations(self, cuid: str, within: float) -> int:
        """How many escalations ``cuid`` recorded in the last ``within`` seconds."""
        since = datetime.fromtimestamp(int(time.time() - within), UTC).isoformat(timespec="seconds")
        rows = self._query(
            "SELECT COUNT(*) FROM escalations WHERE cuid = ? AND created_at > ?", (cuid, since)
        )
        return int(rows[0][0])

    @staticmethod
    def _escalation(row: sqlite3.Row) -> dict[str, Any]:
        item = dict(row)
        item["escalation_id"] = f"ESC-{row['id']:04d}"
        item["params"] = json.loads(item.get("params") or "{}")
        return item

    async def escalations(
        self,
        cuid: str | None = None,
        *,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Escalations, oldest first, optionally of one technician or in one status."""
        rows = self._query(
            "SELECT * FROM escalations WHERE (? IS NULL OR cuid = ?) AND (? IS NULL OR status = ?)"
            f" ORDER BY id{' DESC' if newest_first else ''} LIMIT ?",
            (cuid, cuid, status, status, limit),
        )
        return [self._escalation(row) for row in rows]

    async def get_escalation(self, escalation_id: str) -> dict[str, Any] | None:
        """One escalation by its id (ESC-0001), or None."""
        number = escalation_number(escalation_id)
        if number is None:
            return None
        rows = self._query("SELECT * FROM escalations WHERE id = ?", (number,))
        return self._escalation(rows[0]) if rows else None

    async def move_escalation(
        self,
        escalation_id: str,
        status: str,
        operator: str,
        *,
        allowed: Collection[str],
        taker_only: bool,
        answer: str | None = None,
        outcome: str | None = None,
    ) -> dict[str, Any] | None:
        """Move an escalation to ``status`` if it is in one of ``allowed`` (and, with
        ``taker_only``, taken by ``operator``), in one conditional statement; the row
        after the move, or None when nothing moved."""
        number = escalation_number(escalation_id)
        if number is None or not allowed:
            return None
        marks = ", ".join("?" for _ in allowed)
        with self._write() as db:
            cur = db.execute(
                "UPDATE escalations SET status = ?, operator = ?,"
                " answer = coalesce(?, answer), outcome = coalesce(?, outcome), updated_at = ?"
                f" WHERE id = ? AND status IN ({marks})"
                " AND (? = 0 OR operator = ? COLLATE NOCASE)",
                (
                    status,
                    operator,
                    answer,
                    outcome,
                    _now(),
                    number,
                    *allowed,
                    int(taker_only),
                    operator,
                ),
            )
            if cur.rowcount == 0:
                return None
            row = db.execute("SELECT * FROM escalations WHERE id = ?", (number,)).fetchone()
        return self._escalation(row)

    # ------------------------------------------------------------------ operators

    async def put_operator(self, name: str, password_hash: str) -> None:
        """Store an operator's password hash, replacing the one a name already has."""
        with self._write() as db:
            db.execute(
                "INSERT INTO operators (name, password_hash, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
                (name.strip(), password_hash, _now()),
            )

    async def operator_hash(self, name: str) -> str | None:
        """The stored password hash of an operator (any case), or None."""
        rows = self._query("SELECT password_hash FROM operators WHERE name = ?", (name.strip(),))
        return str(rows[0]["password_hash"]) if rows else None

    async def list_operators(self) -> list[str]:
        """The operators' names, sorted."""
        rows = self._query("SELECT name FROM operators ORDER BY name COLLATE NOCASE")
        return [str(row["name"]) for row in rows]

    async def remove_operator(self, name: str) -> bool:
        """Delete an operator; whether there was one."""
        with self._write() as db:
            cur = db.execute("DELETE FROM operators WHERE name = ?", (name.strip(),))
            return cur.rowcount > 0

    # ------------------------------------------------------------------ credentials
    #
    # Plain SQL on purpose (no COLLATE, no upsert): the table moves to another database
    # with the rest. CUIDs are stored upper-case; times are ISO 8601 UTC text, which
    # compares in time order. Only digests are stored: see ``orchestrator_core.credentials``.

    async def add_credential(
        self, digest: str, cuid: str, kind: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store one credential's digest for a technician, with its expiry."""
        with self._write() as db:
            db.execute(
                "INSERT INTO tokens (digest, cuid, kind, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (digest, cuid.strip().upper(), kind, _instant(created_at), _instant(expires_at)),
            )

    async def credential(self, digest: str, kind: str, now: datetime) -> tuple[str, str] | None:
        """The stored digest and CUID of an unexpired, unused credential, or None."""
        rows = self._query(
            "SELECT digest, cuid FROM tokens WHERE digest = ? AND kind = ? AND expires_at > ?"
            " AND used_at IS NULL",
            (digest, kind, _instant(now)),
        )
        return (str(rows[0]["digest"]), str(rows[0]["cuid"])) if rows else None

    async def use_credential(
        self, digest: str, kind: str, now: datetime, max_failures: int
    ) -> bool:
        """Mark an unexpired, unused credential used; False when there is none to use.

        One conditional UPDATE, so of two concurrent uses only one succeeds.
        """
        with self._write() as db:
            cur = db.execute(
                "UPDATE tokens SET used_at = ? WHERE digest = ? AND kind = ? AND expires_at > ?"
                " AND used_at IS NULL AND failures < ?",
                (_instant(now), digest, kind, _instant(now), max_failures),
            )
            return cur.rowcount == 1

    async def credential_failed(self, cuid: str, kind: str, now: datetime) -> None:
        """Count a wrong guess against each of a technician's live credentials of ``kind``."""
        with self._write() as db:
            db.execute(
                "UPDATE tokens SET failures = failures + 1 WHERE cuid = ? AND kind = ?"
                " AND expires_at > ? AND used_at IS NULL",
                (cuid.strip().upper(), kind, _instant(now)),
            )

    async def revoke_credential(self, digest: str, kind: str) -> bool:
        """Delete one credential; whether it existed."""
        with self._write() as db:
            cur = db.execute("DELETE FROM tokens WHERE digest = ? AND kind = ?", (digest, kind))
            return cur.rowcount > 0

    async def revoke_credentials(self, cuid: str, kind: str) -> int:
        """Delete every credential of ``kind`` a technician has; how many there were."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM tokens WHERE cuid = ? AND kind = ?", (cuid.strip().upper(), kind)
            )
            return cur.rowcount

    async def purge_credentials(self, now: datetime) -> int:
        """Delete expired and used credentials; how many."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM tokens WHERE expires_at <= ? OR used_at IS NOT NULL", (_instant(now),)
            )
            return cur.rowcount


class SqliteAuditLog:
    """The tool audit (``AuditLog``) in the work orders' SQLite file and connection."""

    def __init__(self, db: SqliteWorkOrders) -> None:
        self._db = db

    async def aclose(self) -> None:
        """Nothing: the connection is the work orders', closed with them."""

    async def record_call(
        self,
        session_id: str,
        order_id: str | None,
        step_id: str,
        attempt: int,
        try_no: int,
        tool: str,
        args: Mapping[str, Any] | str,
        ok: bool,
        error_kind: str | None,
        result: dict[str, Any],
        duration_ms: float,
    ) -> None:
        """Append one tool try to the audit; ``args`` must already be masked.

        ``args`` may also be given as its ``audit_json`` text, which the caller
        may have made already (to look for an earlier success).

        One autocommitted statement rather than BEGIN/INSERT/COMMIT: it is on
        every tool call's path, and a single INSERT is atomic by itself.
        """
        with self._db._lock:
            try:
                self._db._conn.execute(
                    "INSERT INTO audit (at, session_id, order_id, step_id, attempt, try_no, tool,"
                    " args, ok, error_kind, result, duration_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        _now(),
                        session_id,
                        order_id,
                        step_id,
                        attempt,
                        try_no,
                        tool,
                        args if isinstance(args, str) else audit_json(args),
                        int(ok),
                        error_kind,
                        AUDIT_RESULT.encode(result),
                        round(duration_ms, 3),
                    ),
                )
            except sqlite3.Error as exc:
                raise WorkOrderError(f"work-order database error: {exc}") from exc

    async def find_success(
        self,
        session_id: str,
        order_id: str | None,
        step_id: str,
        attempt: int,
        tool: str | None = None,
        args: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any] | None:
        """The outputs of the successful call recorded for exactly this tuple, if any.

        With ``tool`` and ``args`` (masked, as recorded), only a success of that
        tool with those arguments counts: a call slot reused by a different call
        (after a turn that was never saved) must not get someone else's outputs.
        ``args`` may also be given as its ``audit_json`` text.
        """
        recorded_args = args if args is None or isinstance(args, str) else audit_json(args)
        rows = self._db._query(
            "SELECT result FROM audit WHERE session_id = ? AND step_id = ? AND attempt = ?"
            " AND order_id IS ? AND ok = 1 AND (? IS NULL OR tool = ?)"
            " AND (? IS NULL OR args = ?) ORDER BY id DESC LIMIT 1",
            (session_id, step_id, attempt, order_id, tool, tool, recorded_args, recorded_args),
        )
        if not rows:
            return None
        result: dict[str, Any] = json.loads(rows[0]["result"])
        return result

    async def audit_rows(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Audit rows, oldest first, with args and result decoded (for tests and the CLI)."""
        sql = "SELECT * FROM audit"
        rows = self._db._query(
            sql + " WHERE session_id = ? ORDER BY id" if session_id else sql + " ORDER BY id",
            (session_id,) if session_id else (),
        )
        return self._decoded(rows)

    async def order_rows(self, order_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """An order's audit rows (any case of its id), oldest first, decoded as ``audit_rows``."""
        rows = self._db._query(
            "SELECT * FROM audit WHERE order_id = ? COLLATE NOCASE ORDER BY id LIMIT ?",
            (order_id.strip(), limit),
        )
        return self._decoded(rows)

    @staticmethod
    def _decoded(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            item = dict(row)
            item["args"] = json.loads(item["args"])
            item["result"] = json.loads(item["result"])
            item["ok"] = bool(item["ok"])
            out.append(item)
        return out


__all__ = ["SqliteAuditLog", "SqliteWorkOrders"]
