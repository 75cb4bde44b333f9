"""How orders and values read to a technician; pure functions, no state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator_core.orders import Order
from orchestrator_core.plans import label, readable


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def order_window(order: Order) -> str:
    """The order's time window as 'YYYY-MM-DD HH:MM–HH:MM', or just its start."""
    start, end = order.scheduled_start, order.scheduled_end
    if end is None:
        return _when(start)
    if end.date() == start.date():
        return f"{_when(start)}–{end:%H:%M}"
    return f"{_when(start)} – {_when(end)}"


def order_line(order: Order) -> str:
    """One line that identifies an order for a technician."""
    return (
        f"{order.order_id} · {order.order_type} · {order.customer_name}, "
        f"{order.address} · {order_window(order)}"
    )


def order_details(order: Order) -> dict[str, str]:
    """The order's extra details under readable labels, those with a value only."""
    shown = {label(key): readable(value) for key, value in order.details.items()}
    return {key: value for key, value in shown.items() if value}


def order_card(order: Order) -> dict[str, Any]:
    """The structured form of an order that bridges render as fields."""
    card: dict[str, Any] = {
        "order_id": order.order_id,
        "order_type": order.order_type,
        "status": order.status,
        "customer": order.customer_name,
        "address": order.address,
        "window": order_window(order),
    }
    if order.service_tier:
        card["service_tier"] = order.service_tier
    details = order_details(order)
    if details:
        card["details"] = details
    return card


def order_fields(order: Order) -> dict[str, Any]:
    """The order as the values a plan reads (``order.<field>``, templates), JSON-typed."""
    return order.model_dump(mode="json")


def numbered(orders: Sequence[Order]) -> str:
    """The orders as a numbered list, one per line."""
    return "\n".join(f"{i}. {order_line(o)}" for i, o in enumerate(orders, 1))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def listing(words: Sequence[str], last: str = "or") -> str:
    """'a', 'a or b', 'a, b or c'."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {last} {words[-1]}"
