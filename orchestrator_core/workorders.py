"""The work-order database: technicians, orders, inventory, escalations and the tool audit.

It is plain synchronous ``sqlite3`` on purpose: every statement here is tiny and
indexed, and such a statement measured at ~10 µs against
~300 µs for a hop to a thread (aiosqlite). WAL with ``synchronous=NORMAL``
survives a killed process. sqlite3 errors leave this module as ``WorkOrderError``.

Ids (cuid, order_id, serial) and e-mail addresses compare case-insensitively
and are stored as given. Timestamps are parsed as ISO 8601; one without a
zone is taken as UTC, and all are stored in UTC.

Import format (JSON; keys starting with ``_`` at the top level are comments)::

    {"technicians": [{"cuid", "name", "email"?, "slack_user_id"?}],
     "orders": [{"order_id", "cuid", "order_type", "status", "scheduled_start",
                 "scheduled_end"?, "created_at", "customer_name", "address",
                 "service_tier"?, "details"?, "notes"?, "closed_at"?}],
     "inventory": [{"serial", "model", "status"}]}

- every section is optional; records are upserted by cuid, order_id or serial;
- an order's ``status`` is one of assigned, in_progress, completed, cancelled,
  escalated; its ``cuid`` must name a technician in the file or the database;
- unknown fields of an order are kept in its ``details`` (tools show them),
  unknown fields of a technician or an inventory item are refused;
- inventory ``status`` is one of available, installed, faulty;
- the whole file is validated first and imported in one transaction: an
  invalid record imports nothing, and the error names the record and field,
  e.g. ``orders[3] (order_id=ORD-1007): status: Input should be ...``;
- an optional field may be left out or given as null;
- data that is valid but that a technician will have to make up for (an
  installation without a service tier, a tier or an ONT model the network
  systems don't know, an order type no plan serves) is imported, and the
  summary warns about it when the caller says what is known
  (``ImportExpectations``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator_core.errors import WorkOrderError
from orchestrator_core.orders import (
    CLOSED_STATUSES,
    INVENTORY_STATUSES,
    OPEN_STATUSES,
    ORDER_STATUSES,
    InventoryItem,
    InventoryRecord,
    Order,
    OrderRecord,
    Technician,
    as_utc,
)
from orchestrator_core.sqlite_wal import Synchronous, WalCheckpointer, connect_wal

DEMO_DATA = Path(__file__).with_name("demo_data.json")

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
"""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def _instant(value: datetime) -> str:
    """A UTC time as fixed-width ISO 8601 text, so that text order is time order."""
    return as_utc(value).isoformat(timespec="microseconds")


# One encoder each rather than json.dumps(..., default=str): dumps builds a new
# encoder on every call that passes options, and the audit encodes on every tool call.
_AUDIT_ARGS = json.JSONEncoder(default=str, sort_keys=True)
_AUDIT_RESULT = json.JSONEncoder(default=str)


def audit_json(args: Mapping[str, Any]) -> str:
    """The one text form of a call's arguments in the audit, so equal calls compare equal."""
    return _AUDIT_ARGS.encode(args)


_stamp: tuple[int, str] = (0, "")


def _now() -> str:
    """The current UTC time to the second, as ISO 8601 text (formatted once per second)."""
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds"))
    return _stamp[1]


@dataclass(frozen=True)
class ImportSummary:
    """How many records an import wrote, how many of them replaced existing ones, and
    ``warnings``: what technicians will be asked for or cannot do because of the data."""

    technicians: int = 0
    orders: int = 0
    inventory: int = 0
    updated: int = 0
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        return (
            f"{self.technicians} technicians, {self.orders} orders, "
            f"{self.inventory} inventory items ({self.updated} updated)"
        )


@dataclass(frozen=True)
class ImportExpectations:
    """What the rest of TechAssist accepts, so that an import can warn about the rest.

    Nothing here refuses a record. An empty collection (or None) is not checked.
    """

    service_tiers: Collection[str] = ()
    """The service tiers the speed test knows."""
    models: Collection[str] = ()
    """The ONT models the provisioning system knows."""
    tier_order_types: Collection[str] = ()
    """Order types whose plan reads the order's service tier (the speed test)."""
    planned_order_types: Collection[str] | None = None
    """Order types some plan serves; None: not checked."""


_SHOWN_IDS = 5


def _some(ids: list[str]) -> str:
    """Up to five ids, then how many more."""
    shown = ", ".join(ids[:_SHOWN_IDS])
    more = len(ids) - _SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def _key(value: str) -> str:
    return value.strip().casefold()


def import_warnings(
    orders: Iterable[Order], inventory: Iterable[InventoryRecord], expect: ImportExpectations
) -> list[str]:
    """What technicians will have to make up for in this data; see ``ImportExpectations``.

    Only open orders count: nobody works on the others.
    """
    warnings: list[str] = []
    open_orders = [o for o in orders if o.is_open]
    tier_types = {_key(t) for t in expect.tier_order_types}
    tiered = [o for o in open_orders if not tier_types or _key(o.order_type) in tier_types]

    if tier_types:
        by_type: dict[str, list[str]] = {}
        for order in tiered:
            if order.service_tier is None:
                by_type.setdefault(order.order_type, []).append(order.order_id)
        for order_type, ids in sorted(by_type.items()):
            have = "has" if len(ids) == 1 else "have"
            warnings.append(
                f"{_count(len(ids), f'open {order_type} order')} {have} no service_tier: "
                f"the speed test will ask the technician for it ({_some(ids)})"
            )

    if expect.service_tiers:
        known = {t.strip().upper() for t in expect.service_tiers}
        odd = [o for o in tiered if o.service_tier and o.service_tier.upper() not in known]
        if odd:
            values = ", ".join(sorted({str(o.service_tier) for o in odd}))
            have = "has" if len(odd) == 1 else "have"
            warnings.append(
                f"{_count(len(odd), 'open order')} {have} a service_tier the speed test "
                f"doesn't know ({values}; known: {', '.join(expect.service_tiers)}): "
                f"the technician will be asked for it ({_some([o.order_id for o in odd])})"
            )

    if expect.planned_order_types is not None:
        planned = {_key(t) for t in expect.planned_order_types}
        lost = [o for o in open_orders if _key(o.order_type) not in planned]
        if lost:
            types = ", ".join(sorted({o.order_type for o in lost}))
            have = "has" if len(lost) == 1 else "have"
            warnings.append(
                f"{_count(len(lost), 'open order')} {have} an order_type no plan serves "
                f"({types}): TechAssist cannot guide the technician through "
                f"{'it' if len(lost) == 1 else 'them'} ({_some([o.order_id for o in lost])})"
            )

    if expect.models:
        models = {_key(m) for m in expect.models}
        unknown = [item for item in inventory if _key(item.model) not in models]
        if unknown:
            names = ", ".join(sorted({item.model for item in unknown}))
            have = "has" if len(unknown) == 1 else "have"
            warnings.append(
                f"{_count(len(unknown), 'inventory item')} {have} a model the provisioning "
                f"system doesn't know ({names}; known: {', '.join(expect.models)}): "
                f"{'it' if len(unknown) == 1 else 'they'} cannot be activated or used as a "
                f"replacement ({_some([item.serial for item in unknown])})"
            )
    return warnings


_SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "technicians": (Technician, "cuid"),
    "orders": (OrderRecord, "order_id"),
    "inventory": (InventoryRecord, "serial"),
}


def _label(section: str, index: int, raw: object, id_field: str) -> str:
    ident = raw.get(id_field) if isinstance(raw, dict) else None
    return f"{section}[{index}]" + (f" ({id_field}={ident})" if ident not in (None, "") else "")


def _problems(label: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "record"
        out.append(f"{label}: {where}: {err['msg']}")
    return out


IMPORT_MAX_BYTES = 50 * 1024 * 1024
"""The default size limit of an import file."""
IMPORT_MAX_DEPTH = 32
"""How deep the arrays and objects of an import file may nest; real files need about 5."""


class ImportTooLarge(WorkOrderError):
    """An import file is over the size limit."""


def _read_capped(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is refused."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise WorkOrderError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise WorkOrderError(f"cannot import {path}: it is {kind}; name a JSON file")
        with os.fdopen(os.dup(fd), "rb") as file:
            content = file.read(max_bytes + 1)
    except OSError as exc:
        raise WorkOrderError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(content) > max_bytes:
        raise ImportTooLarge(
            f"cannot import {path}: it is larger than the import limit of {max_bytes:,} bytes"
        )
    return content


def _parse_json(path: Path, content: bytes) -> Any:
    """The JSON of an import file; any problem is one line that names the file."""
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WorkOrderError(
            f"cannot read {path}: it is not UTF-8 text (byte {exc.start})"
        ) from None
    except ValueError as exc:
        raise WorkOrderError(f"cannot read {path}: invalid JSON: {exc}") from None
    except RecursionError:
        raise WorkOrderError(
            f"cannot read {path}: it nests deeper than {IMPORT_MAX_DEPTH} levels"
        ) from None
    problem = _shape_problem(data)
    if problem:
        raise WorkOrderError(f"cannot read {path}: {problem}")
    return data


def _shape_problem(data: Any) -> str | None:
    """Why parsed JSON cannot be imported whatever its records say: too deep, or a
    string that cannot be stored (a lone surrogate, from an escape such as ``\\ud800``)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and _SURROGATE.search(value):
                return (
                    f"it holds text that is not valid Unicode: {_SURROGATE.sub('?', value)[:40]!r}"
                )
        elif isinstance(value, dict | list):
            if depth > IMPORT_MAX_DEPTH:
                return f"it nests deeper than {IMPORT_MAX_DEPTH} levels"
            items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
    return None


_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _validate(data: object) -> tuple[list[Technician], list[Order], list[InventoryItem]]:
    """Validate a whole import; raise one WorkOrderError listing every problem."""
    if not isinstance(data, dict):
        raise WorkOrderError(
            "import data must be a JSON object with technicians, orders, inventory"
        )
    problems: list[str] = []
    unknown = [k for k in data if k not in _SECTIONS and not str(k).startswith("_")]
    if unknown:
        problems.append(
            f"unknown section(s) {', '.join(map(repr, unknown))}; expected {', '.join(_SECTIONS)}"
        )
    parsed: dict[str, list[Any]] = {}
    for section, (model, id_field) in _SECTIONS.items():
        records = data.get(section, [])
        parsed[section] = []
        if not isinstance(records, list):
            problems.append(f"{section}: must be a list of records")
            continue
        seen: dict[str, int] = {}
        for index, raw in enumerate(records):
            label = _label(section, index, raw, id_field)
            try:
                record = model.model_validate(raw)
            except ValidationError as exc:
                problems.extend(_problems(label, exc))
                continue
            key = str(getattr(record, id_field)).casefold()
            if key in seen:
                problems.append(f"{label}: {id_field}: duplicate of {section}[{seen[key]}]")
            seen[key] = index
            parsed[section].append(record)
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        shown = problems[:20] + more
        raise WorkOrderError("invalid import data:\n" + "\n".join(shown))
    orders = [record.to_order() for record in parsed["orders"]]
    return parsed["technicians"], orders, parsed["inventory"]


def prioritize(orders: Iterable[Order]) -> list[Order]:
    """The open orders, most urgent first.

    In-progress work comes first (a technician finishes what they started),
    then the earliest scheduled start, then the oldest order, then the order id
    so that the order is total and stable across runs.
    """
    return sorted(
        (o for o in orders if o.is_open),
        key=lambda o: (o.status != "in_progress", o.scheduled_start, o.created_at, o.order_id),
    )


class WorkOrderDB:
    """The work-order database in one SQLite file; create the schema on open."""

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
        except sqlite3.Error as exc:
            raise WorkOrderError(f"cannot open the work-order database {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._checkpointer = WalCheckpointer(self.path) if str(path) != ":memory:" else None

    def close(self) -> None:
        """Close the connection; the object is unusable afterwards."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> WorkOrderDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def import_data(
        self, data: dict[str, Any], expect: ImportExpectations | None = None
    ) -> ImportSummary:
        """Validate and upsert a whole data set in one transaction; see the module docstring.

        With ``expect``, the summary warns about valid data a technician will
        have to make up for (``import_warnings``).
        """
        technicians, orders, inventory = _validate(data)
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
        warnings = import_warnings(orders, inventory, expect) if expect is not None else []
        return ImportSummary(
            len(technicians), len(orders), len(inventory), updated, tuple(warnings)
        )

    @staticmethod
    def _exists(db: sqlite3.Connection, table: str, column: str, value: str) -> int:
        row = db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone()
        return 1 if row else 0

    def import_file(
        self,
        path: Path,
        expect: ImportExpectations | None = None,
        *,
        max_bytes: int = IMPORT_MAX_BYTES,
    ) -> ImportSummary:
        """Import a JSON file in the import format; a bad file names itself in the error.

        Only a regular file of at most ``max_bytes`` is read (never a device, a
        pipe or a directory, and never more than ``max_bytes + 1`` bytes), and
        its JSON may nest at most ``IMPORT_MAX_DEPTH`` levels.
        """
        data = _parse_json(path, _read_capped(path, max_bytes))
        try:
            return self.import_data(data, expect)
        except WorkOrderError as exc:
            raise WorkOrderError(f"{path}: {exc}") from exc

    def is_empty(self) -> bool:
        """True when no technician is known (orders cannot exist without one)."""
        return not self._query("SELECT 1 FROM technicians LIMIT 1")

    def seed_demo(self) -> bool:
        """Import the bundled demo data if the database is empty; return whether it did."""
        if not self.is_empty():
            return False
        self.import_file(DEMO_DATA)
        return True

    # ------------------------------------------------------------------ technicians

    def get_technician(self, cuid: str) -> Technician | None:
        """The technician with this CUID (any case), or None."""
        rows = self._query("SELECT * FROM technicians WHERE cuid = ?", (cuid.strip(),))
        return Technician(**dict(rows[0])) if rows else None

    def find_technician_by_slack(self, slack_user_id: str) -> Technician | None:
        """The technician mapped to this Slack user id, or None."""
        rows = self._query(
            "SELECT * FROM technicians WHERE slack_user_id = ? ORDER BY cuid LIMIT 1",
            (slack_user_id,),
        )
        return Technician(**dict(rows[0])) if rows else None

    def find_technician_by_email(self, email: str) -> Technician | None:
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

    def list_orders(self, cuid: str) -> list[Order]:
        """All of a technician's orders, whatever their status, by scheduled start."""
        rows = self._query(
            "SELECT * FROM orders WHERE cuid = ? ORDER BY scheduled_start, order_id",
            (cuid.strip(),),
        )
        return [self._order(row) for row in rows]

    def open_orders(self, cuid: str) -> list[Order]:
        """A technician's assigned and in-progress orders, most urgent first."""
        rows = self._query(
            "SELECT * FROM orders WHERE cuid = ? AND status IN ('assigned', 'in_progress')",
            (cuid.strip(),),
        )
        return prioritize(self._order(row) for row in rows)

    def get_order(self, order_id: str) -> Order | None:
        """The order with this id (any case), whatever its status, or None."""
        rows = self._query("SELECT * FROM orders WHERE order_id = ?", (order_id.strip(),))
        return self._order(rows[0]) if rows else None

    def set_order_status(self, order_id: str, status: str, note: str = "") -> Order:
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
        order = self.get_order(order_id)
        assert order is not None
        return order

    # ------------------------------------------------------------------ inventory

    def get_inventory(self, serial: str) -> InventoryItem | None:
        """The inventory item with this serial (any case), or None."""
        rows = self._query("SELECT * FROM inventory WHERE serial = ?", (serial.strip(),))
        return InventoryItem(**dict(rows[0])) if rows else None

    def inventory_on_order(self, order_id: str) -> list[InventoryItem]:
        """The items recorded against an order (installed there, or removed as faulty)."""
        rows = self._query(
            "SELECT * FROM inventory WHERE order_id = ? ORDER BY serial", (order_id.strip(),)
        )
        return [InventoryItem(**dict(row)) for row in rows]

    def set_inventory_status(self, serial: str, status: str, order_id: str | None = None) -> None:
        """Set an item's status; ``order_id`` says which order it is on or came from.

        Without an order id, an available item forgets its order and any other keeps it.
        """
        if status not in INVENTORY_STATUSES:
            raise WorkOrderError(
                f"unknown inventory status {status!r}; "
                f"expected one of {', '.join(INVENTORY_STATUSES)}"
            )
        with self._write() as db:
            cur = db.execute(
                "UPDATE inventory SET status = ?, order_id = CASE WHEN ? IS NOT NULL THEN ?"
                " WHEN ? = 'available' THEN NULL ELSE order_id END WHERE serial = ?",
                (status, order_id, order_id, status, serial.strip()),
            )
            if cur.rowcount == 0:
                raise WorkOrderError(f"no inventory item {serial!r}")

    # ------------------------------------------------------------------ escalations

    def add_escalation(self, cuid: str, order_id: str | None, kind: str, reason: str) -> str:
        """Record that a human is needed; return its id, like ESC-0001."""
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO escalations (cuid, order_id, kind, reason, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (cuid, order_id, kind, reason, _now()),
            )
            number = cur.lastrowid
        return f"ESC-{number:04d}"

    def count_escalations(self, cuid: str, within: float) -> int:
        """How many escalations ``cuid`` recorded in the last ``within`` seconds."""
        since = datetime.fromtimestamp(int(time.time() - within), UTC).isoformat(timespec="seconds")
        rows = self._query(
            "SELECT COUNT(*) FROM escalations WHERE cuid = ? AND created_at > ?", (cuid, since)
        )
        return int(rows[0][0])

    def escalations(self, cuid: str | None = None) -> list[dict[str, Any]]:
        """Escalations, oldest first, optionally of one technician (for tests and the CLI)."""
        sql = "SELECT * FROM escalations"
        rows = self._query(
            sql + " WHERE cuid = ? ORDER BY id" if cuid else sql + " ORDER BY id",
            (cuid,) if cuid else (),
        )
        return [{**dict(row), "escalation_id": f"ESC-{row['id']:04d}"} for row in rows]

    # ------------------------------------------------------------------ credentials
    #
    # Plain SQL on purpose (no COLLATE, no upsert): the table moves to another database
    # with the rest. CUIDs are stored upper-case; times are ISO 8601 UTC text, which
    # compares in time order. Only digests are stored: see ``orchestrator_core.credentials``.

    def add_credential(
        self, digest: str, cuid: str, kind: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store one credential's digest for a technician, with its expiry."""
        with self._write() as db:
            db.execute(
                "INSERT INTO tokens (digest, cuid, kind, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (digest, cuid.strip().upper(), kind, _instant(created_at), _instant(expires_at)),
            )

    def credential(self, digest: str, kind: str, now: datetime) -> tuple[str, str] | None:
        """The stored digest and CUID of an unexpired, unused credential, or None."""
        rows = self._query(
            "SELECT digest, cuid FROM tokens WHERE digest = ? AND kind = ? AND expires_at > ?"
            " AND used_at IS NULL",
            (digest, kind, _instant(now)),
        )
        return (str(rows[0]["digest"]), str(rows[0]["cuid"])) if rows else None

    def use_credential(self, digest: str, kind: str, now: datetime, max_failures: int) -> bool:
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

    def credential_failed(self, cuid: str, kind: str, now: datetime) -> None:
        """Count a wrong guess against each of a technician's live credentials of ``kind``."""
        with self._write() as db:
            db.execute(
                "UPDATE tokens SET failures = failures + 1 WHERE cuid = ? AND kind = ?"
                " AND expires_at > ? AND used_at IS NULL",
                (cuid.strip().upper(), kind, _instant(now)),
            )

    def revoke_credential(self, digest: str, kind: str) -> bool:
        """Delete one credential; whether it existed."""
        with self._write() as db:
            cur = db.execute("DELETE FROM tokens WHERE digest = ? AND kind = ?", (digest, kind))
            return cur.rowcount > 0

    def revoke_credentials(self, cuid: str, kind: str) -> int:
        """Delete every credential of ``kind`` a technician has; how many there were."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM tokens WHERE cuid = ? AND kind = ?", (cuid.strip().upper(), kind)
            )
            return cur.rowcount

    def purge_credentials(self, now: datetime) -> int:
        """Delete expired and used credentials; how many."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM tokens WHERE expires_at <= ? OR used_at IS NOT NULL", (_instant(now),)
            )
            return cur.rowcount

    # ------------------------------------------------------------------ audit

    def record_call(
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
        with self._lock:
            try:
                self._conn.execute(
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
                        _AUDIT_RESULT.encode(result),
                        round(duration_ms, 3),
                    ),
                )
            except sqlite3.Error as exc:
                raise WorkOrderError(f"work-order database error: {exc}") from exc

    def find_success(
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
        rows = self._query(
            "SELECT result FROM audit WHERE session_id = ? AND step_id = ? AND attempt = ?"
            " AND order_id IS ? AND ok = 1 AND (? IS NULL OR tool = ?)"
            " AND (? IS NULL OR args = ?) ORDER BY id DESC LIMIT 1",
            (session_id, step_id, attempt, order_id, tool, tool, recorded_args, recorded_args),
        )
        if not rows:
            return None
        result: dict[str, Any] = json.loads(rows[0]["result"])
        return result

    def audit_rows(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Audit rows, oldest first, with args and result decoded (for tests and the CLI)."""
        sql = "SELECT * FROM audit"
        rows = self._query(
            sql + " WHERE session_id = ? ORDER BY id" if session_id else sql + " ORDER BY id",
            (session_id,) if session_id else (),
        )
        out = []
        for row in rows:
            item = dict(row)
            item["args"] = json.loads(item["args"])
            item["result"] = json.loads(item["result"])
            item["ok"] = bool(item["ok"])
            out.append(item)
        return out


__all__ = [
    "DEMO_DATA",
    "INVENTORY_STATUSES",
    "ImportExpectations",
    "ImportSummary",
    "InventoryItem",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "Order",
    "Technician",
    "WorkOrderDB",
    "import_warnings",
    "prioritize",
]
