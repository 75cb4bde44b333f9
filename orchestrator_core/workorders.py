"""The work orders as an interface: technicians, orders, inventory, escalations, credentials.

``WorkOrders`` is what the tools, the credentials, the importer and the CLI
use. Every method is a coroutine, so a backend on a network database never
blocks the event loop; the SQLite backend (``orchestrator_core.sqlite_workorders``)
is one implementation. Records are the typed models of ``orchestrator_core.orders``;
validating an import file is the importer's job (``orchestrator_core.importer``).

What every implementation guarantees:

- ids (cuid, order_id, serial) and e-mail addresses compare case-insensitively
  and are stored as given; CUIDs of credentials are stored upper-case;
- timestamps come back in UTC;
- a database failure leaves as ``WorkOrderError`` with a one-line message, never
  as the driver's own exception;
- each write is one transaction: it happens entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from orchestrator_core.orders import (
    INVENTORY_STATUSES,
    OPEN_STATUSES,
    ORDER_STATUSES,
    InventoryItem,
    InventoryRecord,
    Order,
    Technician,
    prioritize,
)


def escalation_number(escalation_id: str) -> int | None:
    """The row id in an id like ESC-0001 (any case), or None when it is not one."""
    text = escalation_id.strip().upper()
    digits = text.removeprefix("ESC-")
    if digits == text or not digits.isascii() or not digits.isdigit() or len(digits) > 12:
        return None
    return int(digits)


class WorkOrders(Protocol):
    """The work-order directory: who the technicians are, their orders, the inventory.

    Callers: the tools (``orchestrator_core.tools``) during a conversation, the
    credentials (``orchestrator_core.credentials``) for tokens and sign-in codes,
    the importer for ``orders import`` and ``orders seed``, the CLI for
    ``orders list``, and the app's readiness check (``ping``).
    """

    # -- lifecycle

    async def ping(self) -> None:
        """Raise WorkOrderError unless the database answers (the readiness check)."""

    async def aclose(self) -> None:
        """Release connections; the object is unusable afterwards."""

    # -- import

    async def is_empty(self) -> bool:
        """True when no technician is known (orders cannot exist without one)."""

    async def upsert(
        self,
        technicians: Sequence[Technician],
        orders: Sequence[Order],
        inventory: Sequence[InventoryRecord],
    ) -> int:
        """Write validated records in one transaction; how many replaced existing ones.

        Technicians, orders and items are matched by cuid, order_id and serial.
        An order whose cuid names no technician in ``technicians`` or the database
        fails the whole write with WorkOrderError (``invalid import data:`` and one
        line per order). An order's empty notes keep the stored ones; a closed
        order keeps the ``closed_at`` it was given, else its first one. An item
        imported as available forgets its order.
        """

    # -- technicians

    async def get_technician(self, cuid: str) -> Technician | None:
        """The technician with this CUID (any case), or None."""

    async def find_technician_by_slack(self, slack_user_id: str) -> Technician | None:
        """The technician mapped to this Slack user id, or None."""

    async def find_technician_by_email(self, email: str) -> Technician | None:
        """The technician with this e-mail address (any case), or None."""

    # -- orders

    async def list_orders(self, cuid: str) -> list[Order]:
        """All of a technician's orders, whatever their status, by scheduled start."""

    async def open_orders(self, cuid: str) -> list[Order]:
        """A technician's assigned and in-progress orders, most urgent first (``prioritize``)."""

    async def get_order(self, order_id: str) -> Order | None:
        """The order with this id (any case), whatever its status, or None."""

    async def set_order_status(self, order_id: str, status: str, note: str = "") -> Order:
        """Move an order to ``status``, appending a dated ``note`` to its notes; the order.

        Closing (completed, cancelled) records ``closed_at`` once; reopening clears
        it. An unknown status or order is a WorkOrderError. Whether a move makes
        sense is the tools' business: this is also the admin path.
        """

    # -- inventory

    async def get_inventory(self, serial: str) -> InventoryItem | None:
        """The inventory item with this serial (any case), or None."""

    async def inventory_on_order(self, order_id: str) -> list[InventoryItem]:
        """The items recorded against an order (installed there, or removed as faulty)."""

    async def set_inventory_status(
        self,
        serial: str,
        status: str,
        order_id: str | None = None,
        *,
        expected: Collection[str] | None = None,
    ) -> None:
        """Set an item's status; ``order_id`` says which order it is on or came from.

        Without an order id, an available item forgets its order and any other
        keeps it. An unknown status, serial or order is a WorkOrderError. With
        ``expected``, the item must be in one of those statuses when it moves,
        checked in the same transaction with the item's row locked, else
        ``InventoryConflict``: of two instances installing the same serial at
        once, exactly one succeeds.
        """

    # -- escalations

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
        """Record that a human is needed, as an open escalation; its id, like ESC-0001.

        The keywords are what a dispatcher sees: the conversation it came from, the
        step (id, k of n), the technician's words and the values so far, which the
        caller must already have masked where the plan says sensitive.
        """

    async def count_escalations(self, cuid: str, within: float) -> int:
        """How many escalations ``cuid`` recorded in the last ``within`` seconds."""

    async def escalations(
        self,
        cuid: str | None = None,
        *,
        status: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Escalations, oldest first (or newest), optionally of one technician or in one
        status; at most ``limit``.

        Each is a dict of the table's columns, with ``escalation_id`` (ESC-0001),
        ``params`` decoded, and times as ISO 8601 UTC text.
        """

    async def get_escalation(self, escalation_id: str) -> dict[str, Any] | None:
        """One escalation (as ``escalations`` gives them) by its id, or None."""

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
        """Move an escalation to ``status`` by ``operator``; the row after, or None.

        Atomic: it moves only from a status in ``allowed`` and, with ``taker_only``,
        only when ``operator`` (any case) took it, checked in the same statement, so
        of two operators taking one escalation at once exactly one succeeds.
        ``answer`` and ``outcome`` are kept when given.
        """

    # -- operators (the dispatcher console's accounts: hashes only, see ``operators.py``)

    async def put_operator(self, name: str, password_hash: str) -> None:
        """Store an operator's password hash; a name already there gets the new hash."""

    async def operator_hash(self, name: str) -> str | None:
        """The password hash of the operator of this name (any case), or None."""

    async def list_operators(self) -> list[str]:
        """The operators' names, sorted."""

    async def remove_operator(self, name: str) -> bool:
        """Delete an operator; whether there was one."""

    # -- credentials (digests only: see ``orchestrator_core.credentials``)

    async def add_credential(
        self, digest: str, cuid: str, kind: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store one credential's digest; WorkOrderError if that digest is already stored."""

    async def credential(self, digest: str, kind: str, now: datetime) -> tuple[str, str] | None:
        """The stored digest and CUID of an unexpired, unused credential, or None."""

    async def use_credential(
        self, digest: str, kind: str, now: datetime, max_failures: int
    ) -> bool:
        """Mark an unexpired, unused credential used; False when there is none to use.

        Atomic: of two concurrent uses, only one succeeds.
        """

    async def credential_failed(self, cuid: str, kind: str, now: datetime) -> None:
        """Count a wrong guess against each of a technician's live credentials of ``kind``."""

    async def revoke_credential(self, digest: str, kind: str) -> bool:
        """Delete one credential; whether it existed."""

    async def revoke_credentials(self, cuid: str, kind: str) -> int:
        """Delete every credential of ``kind`` a technician has; how many there were."""

    async def purge_credentials(self, now: datetime) -> int:
        """Delete expired and used credentials; how many."""


__all__ = [
    "INVENTORY_STATUSES",
    "InventoryItem",
    "OPEN_STATUSES",
    "ORDER_STATUSES",
    "Order",
    "Technician",
    "WorkOrders",
    "escalation_number",
    "prioritize",
]
