"""``WorkOrders`` and ``AuditLog`` on PostgreSQL, through psycopg 3's async connection pool.

Every call is a coroutine on the pool: nothing here blocks the event loop. Writes
that read before they change (status changes, inventory moves) run in one
transaction with the row locked (``SELECT … FOR UPDATE``), so two instances
moving the same order or the same serial are serialised by the database, and a
conditional move (``expected``) sees the state the other one committed.

Ids and e-mail addresses compare case-insensitively through a lower-case
``*_key`` column beside the value as given (see ``migrations/001_initial.sql``).
The schema is created by ``techassist db upgrade``; opening checks its version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from orchestrator_core.audit import AUDIT_RESULT, audit_json
from orchestrator_core.errors import InventoryConflict, WorkOrderError, WorkOrdersUnavailable
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
from orchestrator_core.pg import migrate
from orchestrator_core.pg.pool import Pool, unreachable
from orchestrator_core.workorders import escalation_number

Row = dict[str, Any]


def _key(value: str) -> str:
    return value.strip().lower()


def _db_error(exc: psycopg.Error) -> WorkOrderError:
    """The ``WorkOrderError`` for a failed call: ``WorkOrdersUnavailable`` when the server
    could not be reached (connection refused or lost, no connection in time)."""
    text = str(exc).strip()
    kind = WorkOrdersUnavailable if unreachable(exc) else WorkOrderError
    return kind(f"work-order database error: {text.splitlines()[0] if text else exc}")


_ORDER_COLUMNS = (
    "order_id, cuid, order_type, status, scheduled_start, scheduled_end, created_at,"
    " customer_name, address, service_tier, details, notes, closed_at"
)
_INVENTORY_COLUMNS = "serial, model, status, order_id"
_TECH_COLUMNS = "cuid, name, email, slack_user_id"


class PostgresWorkOrders:
    """The work orders (``WorkOrders``) in a PostgreSQL database, on a connection pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    @classmethod
    async def open(
        cls, conninfo: str, *, min_size: int = 1, max_size: int = 10
    ) -> PostgresWorkOrders:
        """A pool on ``conninfo``; WorkOrderError if the database is unreachable or not upgraded."""
        pool = Pool(conninfo, min_size=min_size, max_size=max_size, open=False, timeout=10.0)
        try:
            await pool.open(wait=True, timeout=10.0)
        except (psycopg.Error, psycopg_pool_errors()) as exc:
            await pool.close()
            raise WorkOrderError(f"cannot connect to the work-order database: {exc}") from None
        db = cls(pool)
        try:
            async with pool.connection() as conn:
                at = await migrate.current(conn)
        except psycopg.Error as exc:
            await pool.close()
            raise _db_error(exc) from exc
        if at < migrate.latest():
            await pool.close()
            raise WorkOrderError(
                f"the work-order database is at schema version {at}, not {migrate.latest()}: "
                "run `techassist db upgrade`"
            )
        return db

    def audit_log(self) -> PostgresAuditLog:
        """The tool audit in the same database, on the same pool."""
        return PostgresAuditLog(self.pool)

    async def aclose(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        await self._rows("SELECT 1 AS one")

    # ------------------------------------------------------------------ plumbing

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(sql.encode(), params)
                rows: list[Row] = await cur.fetchall()
                return rows
        except psycopg.Error as exc:
            raise _db_error(exc) from exc

    # ------------------------------------------------------------------ import

    async def is_empty(self) -> bool:
        return not await self._rows("SELECT 1 AS one FROM technicians LIMIT 1")

    async def upsert(
        self,
        technicians: Sequence[Technician],
        orders: Sequence[Order],
        inventory: Sequence[InventoryRecord],
    ) -> int:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                return await self._upsert(conn, technicians, orders, inventory)
        except psycopg.Error as exc:
            raise _db_error(exc) from exc

    async def _upsert(
        self,
        conn: psycopg.AsyncConnection[Any],
        technicians: Sequence[Technician],
        orders: Sequence[Order],
        inventory: Sequence[InventoryRecord],
    ) -> int:
        known = {_key(t.cuid) for t in technicians}
        wanted = sorted({_key(o.cuid) for o in orders} - known)
        if wanted:
            cur = await conn.execute(
                b"SELECT cuid_key FROM technicians WHERE cuid_key = ANY(%s)", (wanted,)
            )
            known |= {row[0] for row in await cur.fetchall()}
        missing = [
            f"orders[{index}] (order_id={order.order_id}): cuid: no technician "
            f"{order.cuid!r} in the file or the database"
            for index, order in enumerate(orders)
            if _key(order.cuid) not in known
        ]
        if missing:
            raise WorkOrderError("invalid import data:\n" + "\n".join(missing))
        updated = 0
        now = datetime.now(UTC).replace(microsecond=0)
        for tech in technicians:
            cur = await conn.execute(
                b"INSERT INTO technicians (cuid_key, cuid, name, email, email_key, slack_user_id)"
                b" VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (cuid_key) DO UPDATE SET"
                b" cuid = excluded.cuid, name = excluded.name, email = excluded.email,"
                b" email_key = excluded.email_key, slack_user_id = excluded.slack_user_id"
                b" RETURNING (xmax <> 0)",
                (
                    _key(tech.cuid),
                    tech.cuid,
                    tech.name,
                    tech.email,
                    _key(tech.email) if tech.email else None,
                    tech.slack_user_id,
                ),
            )
            updated += await _was_update(cur)
        for order in orders:
            # A closed order keeps the closed_at it was given, else its first one.
            closed = order.closed_at
            cur = await conn.execute(
                b"INSERT INTO orders (order_key, order_id, cuid_key, cuid, order_type, status,"
                b" scheduled_start, scheduled_end, created_at, customer_name, address,"
                b" service_tier, details, notes, closed_at)"
                b" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                b" ON CONFLICT (order_key) DO UPDATE SET order_id = excluded.order_id,"
                b" cuid_key = excluded.cuid_key, cuid = excluded.cuid,"
                b" order_type = excluded.order_type, status = excluded.status,"
                b" scheduled_start = excluded.scheduled_start,"
                b" scheduled_end = excluded.scheduled_end, created_at = excluded.created_at,"
                b" customer_name = excluded.customer_name, address = excluded.address,"
                b" service_tier = excluded.service_tier, details = excluded.details,"
                b" notes = CASE WHEN excluded.notes = '' THEN orders.notes"
                b" ELSE excluded.notes END,"
                b" closed_at = CASE WHEN excluded.status IN ('completed', 'cancelled')"
                b" THEN coalesce(%s, orders.closed_at, excluded.closed_at) END"
                b" RETURNING (xmax <> 0)",
                (
                    _key(order.order_id),
                    order.order_id,
                    _key(order.cuid),
                    order.cuid,
                    order.order_type,
                    order.status,
                    order.scheduled_start,
                    order.scheduled_end,
                    order.created_at,
                    order.customer_name,
                    order.address,
                    order.service_tier,
                    Jsonb(order.details),
                    order.notes,
                    (closed or now) if order.status in CLOSED_STATUSES else None,
                    closed,
                ),
            )
            updated += await _was_update(cur)
        for item in inventory:
            # Only an available item forgets which order it was on.
            cur = await conn.execute(
                b"INSERT INTO inventory (serial_key, serial, model, status)"
                b" VALUES (%s, %s, %s, %s) ON CONFLICT (serial_key) DO UPDATE SET"
                b" serial = excluded.serial, model = excluded.model, status = excluded.status,"
                b" order_key = CASE WHEN excluded.status = 'available' THEN NULL"
                b" ELSE inventory.order_key END,"
                b" order_id = CASE WHEN excluded.status = 'available' THEN NULL"
                b" ELSE inventory.order_id END"
                b" RETURNING (xmax <> 0)",
                (_key(item.serial), item.serial, item.model, item.status),
            )
            updated += await _was_update(cur)
        return updated

    # ------------------------------------------------------------------ technicians

    async def get_technician(self, cuid: str) -> Technician | None:
        rows = await self._rows(
            f"SELECT {_TECH_COLUMNS} FROM technicians WHERE cuid_key = %s", (_key(cuid),)
        )
        return Technician(**rows[0]) if rows else None

    async def find_technician_by_slack(self, slack_user_id: str) -> Technician | None:
        rows = await self._rows(
            f"SELECT {_TECH_COLUMNS} FROM technicians WHERE slack_user_id = %s"
            " ORDER BY cuid_key LIMIT 1",
            (slack_user_id,),
        )
        return Technician(**rows[0]) if rows else None

    async def find_technician_by_email(self, email: str) -> Technician | None:
        rows = await self._rows(
            f"SELECT {_TECH_COLUMNS} FROM technicians WHERE email_key = %s"
            " ORDER BY cuid_key LIMIT 1",
            (_key(email),),
        )
        return Technician(**rows[0]) if rows else None

    # ------------------------------------------------------------------ orders

    async def list_orders(self, cuid: str) -> list[Order]:
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE cuid_key = %s"
            " ORDER BY scheduled_start, order_id",
            (_key(cuid),),
        )
        return [Order(**row) for row in rows]

    async def open_orders(self, cuid: str) -> list[Order]:
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE cuid_key = %s"
            " AND status IN ('assigned', 'in_progress')",
            (_key(cuid),),
        )
        return prioritize(Order(**row) for row in rows)

    async def get_order(self, order_id: str) -> Order | None:
        rows = await self._rows(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_key = %s", (_key(order_id),)
        )
        return Order(**rows[0]) if rows else None

    async def set_order_status(self, order_id: str, status: str, note: str = "") -> Order:
        if status not in ORDER_STATUSES:
            raise WorkOrderError(
                f"unknown order status {status!r}; expected one of {', '.join(ORDER_STATUSES)}"
            )
        now = datetime.now(UTC).replace(microsecond=0)
        line = f"{now.isoformat()} [{status}] {note.strip()}" if note.strip() else ""
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    b"SELECT order_key FROM orders WHERE order_key = %s FOR UPDATE",
                    (_key(order_id),),
                )
                if await cur.fetchone() is None:
                    raise WorkOrderError(f"no order {order_id!r}")
                await cur.execute(
                    b"UPDATE orders SET status = %s,"
                    b" closed_at = CASE WHEN %s THEN coalesce(closed_at, %s) END,"
                    b" notes = CASE WHEN %s = '' THEN notes WHEN notes = '' THEN %s"
                    b" ELSE notes || chr(10) || %s END"
                    b" WHERE order_key = %s RETURNING " + _ORDER_COLUMNS.encode(),
                    (
                        status,
                        status in CLOSED_STATUSES,
                        now,
                        line,
                        line,
                        line,
                        _key(order_id),
                    ),
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
        assert row is not None
        return Order(**row)

    # ------------------------------------------------------------------ inventory

    async def get_inventory(self, serial: str) -> InventoryItem | None:
        rows = await self._rows(
            f"SELECT {_INVENTORY_COLUMNS} FROM inventory WHERE serial_key = %s", (_key(serial),)
        )
        return InventoryItem(**rows[0]) if rows else None

    async def inventory_on_order(self, order_id: str) -> list[InventoryItem]:
        rows = await self._rows(
            f"SELECT {_INVENTORY_COLUMNS} FROM inventory WHERE order_key = %s ORDER BY serial",
            (_key(order_id),),
        )
        return [InventoryItem(**row) for row in rows]

    async def set_inventory_status(
        self,
        serial: str,
        status: str,
        order_id: str | None = None,
        *,
        expected: Collection[str] | None = None,
    ) -> None:
        if status not in INVENTORY_STATUSES:
            raise WorkOrderError(
                f"unknown inventory status {status!r}; "
                f"expected one of {', '.join(INVENTORY_STATUSES)}"
            )
        order_key = _key(order_id) if order_id is not None else None
        try:
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    b"SELECT status FROM inventory WHERE serial_key = %s FOR UPDATE",
                    (_key(serial),),
                )
                row = await cur.fetchone()
                if row is None:
                    raise WorkOrderError(f"no inventory item {serial!r}")
                if expected is not None and row[0] not in expected:
                    raise InventoryConflict(serial, str(row[0]))
                if order_key is not None:
                    found = await conn.execute(
                        b"SELECT order_id FROM orders WHERE order_key = %s", (order_key,)
                    )
                    if await found.fetchone() is None:
                        raise WorkOrderError(f"no order {order_id!r}")
                await conn.execute(
                    b"UPDATE inventory SET status = %s,"
                    b" order_key = CASE WHEN %s::text IS NOT NULL THEN %s"
                    b" WHEN %s = 'available' THEN NULL ELSE order_key END,"
                    b" order_id = CASE WHEN %s::text IS NOT NULL THEN %s"
                    b" WHEN %s = 'available' THEN NULL ELSE order_id END"
                    b" WHERE serial_key = %s",
                    (
                        status,
                        order_key,
                        order_key,
                        status,
                        order_id,
                        order_id,
                        status,
                        _key(serial),
                    ),
                )
        except psycopg.Error as exc:
            raise _db_error(exc) from exc

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
        now = datetime.now(UTC).replace(microsecond=0)
        rows = await self._rows(
            "INSERT INTO escalations (cuid_key, cuid, order_id, kind, reason, created_at,"
            " status, session_key, step, step_no, step_of, words, params, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                _key(cuid),
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
        return f"ESC-{rows[0]['id']:04d}"

    async def count_escalations(self, cuid: str, within: float) -> int:
        since = datetime.fromtimestamp(int(time.time() - within), UTC)
        rows = await self._rows(
            "SELECT count(*) AS n FROM escalations WHERE cuid_key = %s AND created_at > %s",
            (_key(cuid), since),
        )
        return int(rows[0]["n"])

    _ESCALATION = (
        "SELECT id, cuid, order_id, kind, reason, created_at, status, operator, answer,"
        " session_key, step, step_no, step_of, words, params, updated_at, outcome"
        " FROM escalations"
    )

    @staticmethod
    def _escalation(row: Row) -> dict[str, Any]:
        updated = row.get("updated_at")
        return {
            **row,
            "created_at": as_utc(row["created_at"]).isoformat(timespec="seconds"),
            "updated_at": as_utc(updated).isoformat(timespec="seconds") if updated else None,
            "params": json.loads(row.get("params") or "{}"),
            "escalation_id": f"ESC-{row['id']:04d}",
        }

    async def escalations(
        self,
        cuid: str | None = None,
        *,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        rows = await self._rows(
            self._ESCALATION + " WHERE (%s::text IS NULL OR cuid_key = %s)"
            " AND (%s::text IS NULL OR status = %s)"
            + (" ORDER BY id DESC LIMIT %s" if newest_first else " ORDER BY id LIMIT %s"),
            (
                _key(cuid) if cuid else None,
                _key(cuid) if cuid else None,
                status,
                status,
                limit,
            ),
        )
        return [self._escalation(row) for row in rows]

    async def get_escalation(self, escalation_id: str) -> dict[str, Any] | None:
        number = escalation_number(escalation_id)
        if number is None:
            return None
        rows = await self._rows(self._ESCALATION + " WHERE id = %s", (number,))
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
        number = escalation_number(escalation_id)
        if number is None or not allowed:
            return None
        # One conditional UPDATE: the row lock it takes serialises two operators.
        rows = await self._rows(
            "UPDATE escalations SET status = %s, operator = %s,"
            " answer = coalesce(%s, answer), outcome = coalesce(%s, outcome),"
            " updated_at = %s WHERE id = %s AND status = ANY(%s)"
            " AND (NOT %s OR lower(operator) = lower(%s))"
            " RETURNING id, cuid, order_id, kind, reason, created_at, status, operator, answer,"
            " session_key, step, step_no, step_of, words, params, updated_at, outcome",
            (
                status,
                operator,
                answer,
                outcome,
                datetime.now(UTC).replace(microsecond=0),
                number,
                list(allowed),
                taker_only,
                operator,
            ),
        )
        return self._escalation(rows[0]) if rows else None

    # ------------------------------------------------------------------ operators

    async def put_operator(self, name: str, password_hash: str) -> None:
        await self._rows(
            "INSERT INTO operators (name_key, name, password_hash) VALUES (%s, %s, %s)"
            " ON CONFLICT (name_key) DO UPDATE SET password_hash = excluded.password_hash"
            " RETURNING name",
            (_key(name), name.strip(), password_hash),
        )

    async def operator_hash(self, name: str) -> str | None:
        rows = await self._rows(
            "SELECT password_hash FROM operators WHERE name_key = %s", (_key(name),)
        )
        return str(rows[0]["password_hash"]) if rows else None

    async def list_operators(self) -> list[str]:
        rows = await self._rows("SELECT name FROM operators ORDER BY name_key")
        return [str(row["name"]) for row in rows]

    async def remove_operator(self, name: str) -> bool:
        rows = await self._rows(
            "DELETE FROM operators WHERE name_key = %s RETURNING name", (_key(name),)
        )
        return bool(rows)

    # ------------------------------------------------------------------ credentials

    async def add_credential(
        self, digest: str, cuid: str, kind: str, created_at: datetime, expires_at: datetime
    ) -> None:
        await self._rows(
            "INSERT INTO tokens (digest, cuid, kind, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING digest",
            (digest, cuid.strip().upper(), kind, created_at, expires_at),
        )

    async def credential(self, digest: str, kind: str, now: datetime) -> tuple[str, str] | None:
        rows = await self._rows(
            "SELECT digest, cuid FROM tokens WHERE digest = %s AND kind = %s"
            " AND expires_at > %s AND used_at IS NULL",
            (digest, kind, now),
        )
        return (str(rows[0]["digest"]), str(rows[0]["cuid"])) if rows else None

    async def use_credential(
        self, digest: str, kind: str, now: datetime, max_failures: int
    ) -> bool:
        rows = await self._rows(
            "UPDATE tokens SET used_at = %s WHERE digest = %s AND kind = %s AND expires_at > %s"
            " AND used_at IS NULL AND failures < %s RETURNING digest",
            (now, digest, kind, now, max_failures),
        )
        return len(rows) == 1

    async def credential_failed(self, cuid: str, kind: str, now: datetime) -> None:
        await self._count(
            "UPDATE tokens SET failures = failures + 1 WHERE cuid = %s AND kind = %s"
            " AND expires_at > %s AND used_at IS NULL",
            (cuid.strip().upper(), kind, now),
        )

    async def revoke_credential(self, digest: str, kind: str) -> bool:
        return (
            await self._count("DELETE FROM tokens WHERE digest = %s AND kind = %s", (digest, kind))
            > 0
        )

    async def revoke_credentials(self, cuid: str, kind: str) -> int:
        return await self._count(
            "DELETE FROM tokens WHERE cuid = %s AND kind = %s", (cuid.strip().upper(), kind)
        )

    async def purge_credentials(self, now: datetime) -> int:
        return await self._count(
            "DELETE FROM tokens WHERE expires_at <= %s OR used_at IS NOT NULL", (now,)
        )

    async def _count(self, sql: str, params: Sequence[Any]) -> int:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(sql.encode(), params)
                return int(cur.rowcount)
        except psycopg.Error as exc:
            raise _db_error(exc) from exc


async def _was_update(cur: psycopg.AsyncCursor[Any]) -> int:
    row = await cur.fetchone()
    return 1 if row is not None and row[0] else 0


def psycopg_pool_errors() -> type[Exception]:
    from psycopg_pool import PoolTimeout

    return PoolTimeout


class PostgresAuditLog:
    """The tool audit (``AuditLog``) in PostgreSQL, on the work orders' pool."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        """Nothing: the pool is the work orders', closed with them."""

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
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    b"INSERT INTO audit (at, session_id, order_id, step_id, attempt, try_no,"
                    b" tool, args, ok, error_kind, result, duration_ms)"
                    b" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        datetime.now(UTC).replace(microsecond=0),
                        session_id,
                        order_id,
                        step_id,
                        attempt,
                        try_no,
                        tool,
                        args if isinstance(args, str) else audit_json(args),
                        ok,
                        error_kind,
                        AUDIT_RESULT.encode(result),
                        round(duration_ms, 3),
                    ),
                )
        except psycopg.Error as exc:
            raise _db_error(exc) from exc

    async def find_success(
        self,
        session_id: str,
        order_id: str | None,
        step_id: str,
        attempt: int,
        tool: str | None = None,
        args: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any] | None:
        recorded_args = args if args is None or isinstance(args, str) else audit_json(args)
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    b"SELECT result FROM audit WHERE session_id = %s AND step_id = %s"
                    b" AND attempt = %s AND order_id IS NOT DISTINCT FROM %s AND ok"
                    b" AND (%s::text IS NULL OR tool = %s)"
                    b" AND (%s::text IS NULL OR args = %s) ORDER BY id DESC LIMIT 1",
                    (
                        session_id,
                        step_id,
                        attempt,
                        order_id,
                        tool,
                        tool,
                        recorded_args,
                        recorded_args,
                    ),
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
        if row is None:
            return None
        result: dict[str, Any] = json.loads(row[0])
        return result

    async def order_rows(self, order_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, at, session_id, order_id, step_id, attempt, try_no, tool, args, ok,"
            " error_kind, result, duration_ms FROM audit WHERE lower(order_id) = %s"
            " ORDER BY id LIMIT %s"
        )
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(sql.encode(), (_key(order_id), limit))
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
        return self._decoded(rows)

    async def audit_rows(self, session_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT id, at, session_id, order_id, step_id, attempt, try_no, tool, args, ok,"
            " error_kind, result, duration_ms FROM audit"
        )
        try:
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                if session_id:
                    await cur.execute(
                        (sql + " WHERE session_id = %s ORDER BY id").encode(), (session_id,)
                    )
                else:
                    await cur.execute((sql + " ORDER BY id").encode())
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            raise _db_error(exc) from exc
        return self._decoded(rows)

    @staticmethod
    def _decoded(rows: Sequence[Row]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            item = dict(row)
            item["at"] = as_utc(item["at"]).isoformat(timespec="seconds")
            item["args"] = json.loads(item["args"])
            item["result"] = json.loads(item["result"])
            out.append(item)
        return out


__all__ = ["PostgresAuditLog", "PostgresWorkOrders"]
