"""How orders, values and menus read to a technician; pure functions, no state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

YES = frozenset({"yes", "y", "yeah", "yep", "ok", "okay", "sure", "confirm", "start"})
NO = frozenset({"no", "n", "nope", "not now", "other", "others"})
QUIT = frozenset({"quit", "exit", "q"})
COMMANDS = frozenset({"help", "status", "skip", "cancel"}) | QUIT
#: Answers that take back a cancel before a reason was given.
BACK = frozenset({"back", "never mind", "nevermind"})

#: Choices offered after an order is finished or handed over.
POST_TASK_CHOICES = ["next", "help", "end"]
#: Choices offered when no order is at hand.
IDLE_CHOICES = ["orders", "help", "end"]
#: Choices offered after three bad values in a row.
ESCALATION_CHOICES = ["try again", "escalate"]


def order_window(order: Mapping[str, Any]) -> str:
    """The order's time window as 'YYYY-MM-DD HH:MM–HH:MM', or just its start."""
    start = str(order.get("scheduled_start") or "")
    end = str(order.get("scheduled_end") or "")
    start_day, _, start_time = start.partition("T")
    if not end:
        return f"{start_day} {start_time[:5]}".strip()
    end_day, _, end_time = end.partition("T")
    if end_day == start_day:
        return f"{start_day} {start_time[:5]}–{end_time[:5]}"
    return f"{start_day} {start_time[:5]} – {end_day} {end_time[:5]}"


def order_line(order: Mapping[str, Any]) -> str:
    """One line that identifies an order for a technician."""
    return (
        f"{order['order_id']} · {order['order_type']} · {order['customer_name']}, "
        f"{order['address']} · {order_window(order)}"
    )


def order_card(order: Mapping[str, Any]) -> dict[str, Any]:
    """The structured form of an order that bridges render as fields."""
    card = {
        "order_id": order["order_id"],
        "order_type": order["order_type"],
        "status": order.get("status"),
        "customer": order["customer_name"],
        "address": order["address"],
        "window": order_window(order),
    }
    if order.get("service_tier"):
        card["service_tier"] = order["service_tier"]
    return card


def numbered(orders: Sequence[Mapping[str, Any]]) -> str:
    """The orders as a numbered list, one per line."""
    return "\n".join(f"{i}. {order_line(o)}" for i, o in enumerate(orders, 1))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Lenient(dict[str, Any]):
    """A template's values, where a missing one shows as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


def format_done(template: str, values: Mapping[str, Any]) -> str:
    """Fill a step's success template; a missing value shows as '?' rather than failing."""
    try:
        return template.format_map(_Lenient(values))
    except (ValueError, IndexError, AttributeError, TypeError):
        return template
