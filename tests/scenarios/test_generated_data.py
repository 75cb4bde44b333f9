"""Generated data sets: whatever valid data an import holds, the conversation holds together.

Hypothesis generates imports in the README's format (optional fields left out,
extra fields, unknown tiers and models, inventory gaps, unicode and long text,
order types with and without a plan, open and closed orders). A scripted
technician answers each prompt only from what the prompt shows (its choices,
its example, its range) and from the imported inventory, through the memory
bridge on real SQLite files and the real simulator. Every open order with a
plan must end closed, or escalated by the technician after a way out was
offered; orders without a plan are never proposed; no reply is an internal
error or shows a placeholder the data did not hold; and the conversation stays
within a bound of turns per order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridges.memory import MemoryBridge, render
from orchestrator_core.importer import import_data
from orchestrator_core.orchestrator import SORRY
from orchestrator_core.orders import OrderRecord
from orchestrator_core.plans import label
from orchestrator_core.simulator import MODELS, TIERS
from orchestrator_core.turns import Reply
from tests.conftest import ServicesFactory

CUID = "GN0001"
OTHER_CUID = "OT0002"
PLANNED_TYPES = ("installation", "repair")
#: Detail keys a real export uses; the repair plan reads several of them.
PLAUSIBLE_KEYS = (
    "trouble",
    "trouble_description",
    "problem",
    "symptom",
    "access_notes",
    "current_serial",
    "current_model",
    "serial",
    "model",
    "fsan",
    "ethernet_port",
    "ssid",
    "customer_online",
    "diagnosis_code",
)
ORDER_FIELDS = frozenset(OrderRecord.model_fields)
UNKNOWN_MODELS = ("HG8245", "ZXHN-F660")
#: Plan parameters each order type's steps can ask for (the tier only when the order's
#: own is missing or unknown; the replacement serial only after an ONT_FAULT diagnosis).
INSTALL_PARAMETERS = ("fsan", "model", "ethernet_port", "ssid", "wifi_password", "customer_online")
REPAIR_PARAMETERS = ("diagnosis_code", "new_serial")
#: Turns allowed beyond the orders' bounds: the final "end", and an idle answer.
IDENTIFICATION_TURNS = 3
#: A hard stop, far above any bound, so a looping conversation fails instead of hanging.
HARD_LIMIT = 400

# ------------------------------------------------------------------ generating imports

_TEXT = st.characters(exclude_categories=("Cs", "Cc"))
NAMES = st.text(_TEXT, min_size=1, max_size=40).filter(lambda s: bool(s.strip()))
ADDRESSES = st.text(_TEXT, min_size=1, max_size=300).filter(lambda s: bool(s.strip()))
SERIALS = st.builds(
    lambda letters, digits: letters + digits,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4),
    st.text("0123456789ABCDEF", min_size=8, max_size=8),
)
SNAKE_KEYS = st.from_regex(r"[a-z]{2,8}(_[a-z]{2,8}){0,2}", fullmatch=True).filter(
    lambda key: key not in ORDER_FIELDS
)
SHORT = st.text(_TEXT, max_size=30)
VALUES = st.one_of(
    SHORT,
    SERIALS,
    st.integers(-(10**6), 10**6),
    st.booleans(),
    st.lists(st.one_of(st.text(_TEXT, max_size=10), st.integers(0, 99)), max_size=3),
    st.none(),
)
EXTRAS = st.dictionaries(st.one_of(st.sampled_from(PLAUSIBLE_KEYS), SNAKE_KEYS), VALUES, max_size=4)
TIER_VALUES = st.sampled_from(["300M", "500M", "1G", "1g", " 500M ", "GIG1000", "2.5G", "", " "])
ORDER_TYPES = st.sampled_from(
    ["installation"] * 3 + ["repair"] * 3 + ["relocation", "Installation ", " REPAIR", "disconnect"]
)
STATUSES = st.sampled_from(
    ["assigned"] * 4 + ["in_progress"] * 2 + ["completed", "cancelled", "escalated"]
)
STARTS = st.sampled_from(
    ["2026-12-02T09:00:00Z", "2026-12-02T13:30:00+01:00", "2026-12-03T08:00:00", "2026-11-30"]
)
ENDS = st.sampled_from(["2026-12-02T12:00:00Z", "2026-12-04T17:00:00Z"])
CREATED = st.sampled_from(["2026-11-20T08:00:00Z", "2026-11-21T10:15:00+02:00"])
#: Injected transient failures: the first calls of one network operation fail, the agent's own
#: retries included, so the technician sees the failure (the database tools never fail).
FAILURES = st.sampled_from(
    [
        "",
        "",
        "run_speed_test:3",
        "check_light_levels:3",
        "configure_wifi:4",
        "run_line_test:3",
        "activate_ont:3",
        "replace_equipment:3",
        "escalate:1",
    ]
)


def optional(
    draw: st.DrawFn, record: dict[str, Any], key: str, values: st.SearchStrategy[Any]
) -> None:
    """Sometimes set ``key``: to a drawn value, or to null."""
    choice = draw(st.sampled_from(["absent", "absent", "value", "value", "null"]))
    if choice == "value":
        record[key] = draw(values)
    elif choice == "null":
        record[key] = None


@st.composite
def orders(draw: st.DrawFn, order_id: str, cuid: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "order_id": order_id,
        "cuid": cuid,
        "order_type": draw(ORDER_TYPES),
        "status": draw(STATUSES),
        "scheduled_start": draw(STARTS),
        "created_at": draw(CREATED),
        "customer_name": draw(NAMES),
        "address": draw(ADDRESSES),
    }
    optional(draw, record, "scheduled_end", ENDS)
    optional(draw, record, "service_tier", TIER_VALUES)
    optional(draw, record, "details", EXTRAS)
    for key, value in draw(EXTRAS).items():
        record.setdefault(key, value)
    return record


@st.composite
def inventories(draw: st.DrawFn) -> list[dict[str, str]]:
    serials = draw(st.lists(SERIALS, min_size=1, max_size=6, unique=True))
    models = st.sampled_from([*MODELS, *MODELS, *UNKNOWN_MODELS, "g-240w-f"])
    statuses = st.sampled_from(["available", "available", "installed", "faulty"])
    items = [{"serial": s, "model": draw(models), "status": draw(statuses)} for s in serials]
    if not any(usable(item) for item in items):
        spares = (f"ALCLF00D{n:04X}" for n in range(len(serials) + 1))
        spare = next(s for s in spares if s not in serials)
        items.append(
            {"serial": spare, "model": draw(st.sampled_from(MODELS)), "status": "available"}
        )
    return draw(st.permutations(items))


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    technician: dict[str, Any] = {"cuid": CUID, "name": draw(NAMES)}
    optional(draw, technician, "email", st.just("tech@example.com"))
    optional(draw, technician, "slack_user_id", st.just("U0GEN0001"))
    count = draw(st.integers(1, 4))
    cuids = st.sampled_from([CUID, CUID, CUID.lower()])  # ids compare case-insensitively
    mine = [draw(orders(f"GEN-{i}", draw(cuids))) for i in range(1, count + 1)]
    theirs = [draw(orders(f"OTH-{i}", OTHER_CUID)) for i in range(1, draw(st.integers(0, 1)) + 1)]
    return {
        "technicians": [technician, {"cuid": OTHER_CUID, "name": "Other Tech"}],
        "orders": mine + theirs,
        "inventory": draw(inventories()),
    }


def usable(item: dict[str, str]) -> bool:
    """An ONT a technician can install: available, of a model the network knows."""
    known = {m.casefold() for m in MODELS}
    return item["status"] == "available" and item["model"].casefold() in known


def has_plan(order_type: str) -> bool:
    return order_type.strip().lower() in PLANNED_TYPES


def is_open(order: dict[str, Any]) -> bool:
    return order["status"] in ("assigned", "in_progress")


def known_tier(order: dict[str, Any]) -> bool:
    tier = order.get("service_tier")
    return isinstance(tier, str) and tier.strip().upper() in TIERS


def parameters_for(order: dict[str, Any]) -> int:
    """How many plan parameters the order's steps can ask for."""
    if order["order_type"].strip().lower() == "repair":
        return len(REPAIR_PARAMETERS)
    return len(INSTALL_PARAMETERS) + (0 if known_tier(order) else 1)


# ------------------------------------------------------------------ the scripted technician

_EXAMPLE = re.compile(r"\(e\.g\. ([^)]+)\)")
_FOR_EXAMPLE = re.compile(r"for example ([^\s,;)]+?)[.,;)]?(?:\s|$)")
_RANGE = re.compile(r"(\d+) to (\d+)")
#: Words a failure prompt may offer besides the fix word, most progress first.
_WAYS_OUT = ("retry", "skip", "escalate")


@dataclass
class Technician:
    """Answers a prompt only from what it shows, and from the imported inventory."""

    inventory: list[dict[str, str]]
    pick: Callable[[Sequence[str]], str]
    tried: set[str] = field(default_factory=set)
    last_serial: str | None = None
    last_needs: str | None = None
    escalated: list[str] = field(default_factory=list)
    """Orders escalated by the technician, each while escalation was offered."""

    def fresh_serial(self) -> str | None:
        for item in self.inventory:
            if usable(item) and item["serial"].casefold() not in self.tried:
                return item["serial"]
        return None

    def example(self, text: str) -> str | None:
        for pattern in (_EXAMPLE, _FOR_EXAMPLE):
            found = pattern.search(text)
            if found:
                return found.group(1).strip()
        found = _RANGE.search(text)
        return found.group(1) if found else None

    def answer(self, question: Reply, order_id: str | None) -> str:
        choices = [c for c in question.choices if c not in ("quit",)]
        needs = question.needs
        if needs is not None:
            self.last_needs = needs
        if needs in ("fsan", "new_serial"):
            serial = self.fresh_serial()
            if serial is None:  # none left: the prompt's example, which will be refused
                example = self.example(question.text)
                assert example is not None, question.text
                return example
            self.tried.add(serial.casefold())
            self.last_serial = serial
            return serial
        if needs == "model":
            item = next(
                (i for i in self.inventory if self.last_serial and i["serial"] == self.last_serial),
                None,
            )
            if item is not None:
                same = [c for c in choices if c.casefold() == item["model"].casefold()]
                if same:
                    return same[0]
            return self.example(question.text) or choices[0]
        if "yes" in choices and "no" in choices:
            return "yes"
        offered = [c for c in choices if c != "escalate"]
        if needs is not None and offered:
            return self.pick(offered)
        if needs is not None:
            example = self.example(question.text)
            assert example is not None, f"no example to answer {question.text!r}"
            return example
        if "next" in choices and "end" in choices:
            remaining = (question.data or {}).get("remaining", 0)
            return "next" if remaining else "end"
        if "orders" in choices and "end" in choices:
            return "end"
        if "try again" in choices:
            stuck = self.last_needs in ("fsan", "new_serial") and self.fresh_serial() is None
            if not stuck:
                return "try again"
            return self.escalate(order_id)
        fixes = [c for c in choices if c not in _WAYS_OUT]
        if fixes:
            return fixes[0]
        for way in _WAYS_OUT:
            if way in choices:
                return way if way != "escalate" else self.escalate(order_id)
        raise AssertionError(f"the technician cannot answer {question.text!r} ({choices})")

    def escalate(self, order_id: str | None) -> str:
        assert order_id is not None, "escalation offered with no order at hand"
        self.escalated.append(order_id)
        return "escalate"


# ------------------------------------------------------------------ checking replies

#: Placeholders a reply must never show, each with the text in the data that excuses it.
_PLACEHOLDERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r": \?"), "?"),
    (re.compile(r" \?\."), "?"),
    (re.compile(r"\?,"), "?"),
    (re.compile(r"\bNone\b"), "none"),
    (re.compile(r"\bnull\b"), "null"),
    (re.compile(r"\bTrue\b"), "true"),
    (re.compile(r"\bFalse\b"), "false"),
    (re.compile(r"\{\}"), "{"),
    (re.compile(r"\{\}"), "}"),
    (re.compile(r"\[\]"), "["),
    (re.compile(r"\[\]"), "]"),
    (re.compile(r"\{'"), "{"),
)


def data_text(value: Any) -> str:
    """Every string the data holds, keys with their labels too, lower-cased."""
    if isinstance(value, dict):
        return " ".join(f"{k} {label(str(k))} {data_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " ".join(data_text(v) for v in value)
    return value.lower() if isinstance(value, str) else ""


def check_replies(replies: list[Reply], excused: str) -> None:
    assert replies, "a turn without a reply"
    for reply in replies:
        assert reply.text != SORRY, "an internal error"
        for pattern, excuse in _PLACEHOLDERS:
            if excuse in excused:
                continue
            assert not pattern.search(reply.text), f"{pattern.pattern!r} in {reply.text!r}"


# ------------------------------------------------------------------ the conversation


@dataclass
class OrderTurns:
    """What the conversation asked on one order: the basis of its bound."""

    parameters: int
    asked: set[str] = field(default_factory=set)
    failures: int = 0
    refused: int = 0

    def bound(self) -> int:
        confirmations = 2  # "yes" to start it, "next" (or "end") after it
        return 2 + self.parameters + confirmations + 3 * self.failures + 3 * self.refused


@dataclass
class Transcript:
    turns: int = 0
    started: list[str] = field(default_factory=list)
    proposed: list[str] = field(default_factory=list)
    per_order: dict[str, OrderTurns] = field(default_factory=dict)
    last: list[Reply] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    """The conversation as text, shown when a check fails."""

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.lines[-count:])


def _is_failure(question: Reply) -> bool:
    return question.data is not None and "error" in question.data


def _between_orders(question: Reply) -> bool:
    """The question after an order (closed or escalated), or with none at hand."""
    return "end" in question.choices and (
        "next" in question.choices or "orders" in question.choices
    )


def _is_way_out(question: Reply) -> bool:
    return question.choices == ["try again", "escalate"]


async def converse(chat: MemoryBridge, data: dict[str, Any], tech: Technician) -> Transcript:
    log = Transcript()
    try:
        await _converse(chat, data, tech, log)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- the conversation's end:\n{log.tail()}") from exc
    return log


async def _converse(
    chat: MemoryBridge, data: dict[str, Any], tech: Technician, log: Transcript
) -> None:
    orders_by_id = {o["order_id"]: o for o in data["orders"]}
    excused = data_text(data)
    current: OrderTurns | None = None
    current_id: str | None = None
    run: tuple[tuple[str | None, str], int, frozenset[str]] | None = None
    replies = await chat.start(CUID)
    while not chat.closed:
        log.lines.append(render(replies))
        check_replies(replies, excused)
        question = replies[-1]
        for reply in replies:
            if reply.text.startswith("Starting ") and reply.data and "order" in reply.data:
                current_id = str(reply.data["order"]["order_id"])
                log.started.append(current_id)
                current = log.per_order.setdefault(
                    current_id, OrderTurns(parameters_for(orders_by_id[current_id]))
                )
        if question.data and "order" in question.data and "yes" in question.choices:
            log.proposed.append(str(question.data["order"]["order_id"]))
        if _between_orders(question):
            current, current_id = None, None
        if current is not None:
            if _is_failure(question) or any(r.text.startswith("I couldn't") for r in replies):
                current.failures += 1
            if question.needs is not None:
                if question.needs in current.asked:
                    current.refused += 1
                current.asked.add(question.needs)
            elif _is_way_out(question):
                current.refused += 1
        # The same question, more than three times in a row, must have gained a choice.
        key = (question.needs, question.text.split("\nIf you're stuck")[0])
        choices = frozenset(question.choices)
        if run is not None and run[0] == key and choices <= run[2]:
            run = (key, run[1] + 1, run[2])
        else:
            run = (key, 1, choices)
        assert run[1] <= 3, f"asked 4 times in a row: {question.text!r}"
        answer = tech.answer(question, current_id)
        log.lines.append(f"> {answer}")
        replies = await chat.say(answer)
        log.turns += 1
        assert log.turns <= HARD_LIMIT, f"no end in sight; last asked {question.text!r}"
    log.lines.append(render(replies))
    check_replies(replies, excused)
    log.last = replies


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets(), failures=FAILURES, choose=st.data())
async def test_a_technician_finishes_every_planned_order_of_any_valid_import(
    make_services: ServicesFactory,
    tmp_path_factory: pytest.TempPathFactory,
    data: dict[str, Any],
    failures: str,
    choose: st.DataObject,
) -> None:
    services = await make_services(
        data_dir=tmp_path_factory.mktemp("generated"), seed_demo=False, sim_failures=failures
    )
    try:
        await import_data(services.workorders, data)
        tech = Technician(
            inventory=data["inventory"],
            pick=lambda options: choose.draw(st.sampled_from(list(options))),
        )
        chat = MemoryBridge(services.orchestrator, "generated")
        log = await converse(chat, data, tech)

        assert "Thanks for your work today" in log.last[-1].text
        mine = [o for o in data["orders"] if o["cuid"].upper() == CUID]
        for order in data["orders"]:
            stored = await services.workorders.get_order(order["order_id"])
            assert stored is not None
            workable = (
                order["cuid"].upper() == CUID and is_open(order) and has_plan(order["order_type"])
            )
            if not workable:
                assert order["order_id"] not in log.proposed + log.started
                assert stored.status == order["status"], order["order_id"]
            elif stored.status == "escalated":
                assert order["order_id"] in tech.escalated, f"{order['order_id']} escalated"
                event("an order escalated")
            else:
                assert stored.status == "completed", (order["order_id"], stored.status)
                event("an order closed")
        for turns in log.per_order.values():
            event(f"values refused: {min(turns.refused, 3)}")
            event(f"tool failures: {min(turns.failures, 3)}")
        bound = sum(turns.bound() for turns in log.per_order.values()) + IDENTIFICATION_TURNS
        assert log.turns <= bound, (log.turns, bound, log.per_order)
        assert set(log.started) <= {o["order_id"] for o in mine}
    finally:
        await services.aclose()
