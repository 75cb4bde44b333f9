"""Technicians, work orders and inventory as typed records: pure data, no storage.

Timestamps are parsed as ISO 8601; one without a zone is taken as UTC, and all
are kept in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

OrderStatus = Literal["assigned", "in_progress", "completed", "cancelled", "escalated"]
InventoryStatus = Literal["available", "installed", "faulty"]
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)
INVENTORY_STATUSES: tuple[str, ...] = get_args(InventoryStatus)
#: The statuses a technician still has work to do on.
OPEN_STATUSES = frozenset({"assigned", "in_progress"})
#: Statuses that close an order; entering one records ``closed_at``.
CLOSED_STATUSES = frozenset({"completed", "cancelled"})


def as_utc(value: datetime) -> datetime:
    """A zone-less timestamp is taken as UTC; every other is converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class Technician(BaseModel):
    """A field technician, known by CUID and optionally by e-mail and Slack user."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    cuid: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str | None = None
    slack_user_id: str | None = None


class Order(BaseModel):
    """A work order. ``details`` holds everything type-specific (a repair's trouble, serial)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    order_id: str = Field(min_length=1)
    cuid: str = Field(min_length=1)
    order_type: str = Field(min_length=1)
    status: OrderStatus
    scheduled_start: datetime
    scheduled_end: datetime | None = None
    created_at: datetime
    customer_name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    service_tier: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""
    closed_at: datetime | None = None

    @field_validator("scheduled_start", "scheduled_end", "created_at", "closed_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("details", "notes", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any, info: ValidationInfo) -> Any:
        """An optional field given as null is the same as one left out."""
        if value is None:
            return {} if info.field_name == "details" else ""
        return value

    @field_validator("service_tier", mode="before")
    @classmethod
    def _blank_tier_is_none(cls, value: Any) -> Any:
        """A blank service tier is no service tier: the speed test will ask for it."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class OrderRecord(Order):
    """An order as an import file gives it: unknown fields are allowed and go to details."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    def to_order(self) -> Order:
        fields = {name: getattr(self, name) for name in Order.model_fields}
        fields["details"] = {**self.details, **(self.model_extra or {})}
        return Order(**fields)


class InventoryRecord(BaseModel):
    """An inventory item as an import file gives it: where it went is the database's business."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    serial: str = Field(min_length=1)
    model: str = Field(min_length=1)
    status: InventoryStatus


class InventoryItem(InventoryRecord):
    """One ONT in the warehouse or at a customer; ``order_id`` says which order it is on."""

    order_id: str | None = None


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
