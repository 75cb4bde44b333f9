"""Import files for the work orders: read a file safely, validate every record, report.

The whole file is validated before anything is written, then handed to a
``WorkOrders`` backend, which upserts it in one transaction.

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
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator_core.errors import WorkOrderError
from orchestrator_core.orders import InventoryItem, InventoryRecord, Order, OrderRecord, Technician
from orchestrator_core.workorders import WorkOrders

DEMO_DATA = Path(__file__).with_name("demo_data.json")


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


async def import_data(
    orders: WorkOrders, data: dict[str, Any], expect: ImportExpectations | None = None
) -> ImportSummary:
    """Validate and upsert a whole data set in one transaction; see the module docstring.

    With ``expect``, the summary warns about valid data a technician will
    have to make up for (``import_warnings``).
    """
    technicians, valid_orders, inventory = _validate(data)
    updated = await orders.upsert(technicians, valid_orders, inventory)
    warnings = import_warnings(valid_orders, inventory, expect) if expect is not None else []
    return ImportSummary(
        len(technicians), len(valid_orders), len(inventory), updated, tuple(warnings)
    )


async def import_file(
    orders: WorkOrders,
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
        return await import_data(orders, data, expect)
    except WorkOrderError as exc:
        raise WorkOrderError(f"{path}: {exc}") from exc


async def seed_demo(orders: WorkOrders) -> bool:
    """Import the bundled demo data if no technician is known yet; return whether it did."""
    if not await orders.is_empty():
        return False
    await import_file(orders, DEMO_DATA)
    return True


__all__ = [
    "DEMO_DATA",
    "IMPORT_MAX_BYTES",
    "IMPORT_MAX_DEPTH",
    "ImportExpectations",
    "ImportSummary",
    "ImportTooLarge",
    "import_data",
    "import_file",
    "import_warnings",
    "seed_demo",
]
