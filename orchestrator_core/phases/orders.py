"""``run_task``: identify the technician, fetch and prioritise the orders, confirm, start."""

from __future__ import annotations

from pydantic import ValidationError

from orchestrator_core import texts
from orchestrator_core.orders import Order
from orchestrator_core.phases.base import Next, PhaseSpec, Services, unclear, words
from orchestrator_core.phases.handback import resume
from orchestrator_core.phases.steps import execute_plan_steps
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply

CONFIRM = words(
    yes=["y", "yeah", "yep", "ok", "okay", "sure", "confirm", "start"],
    no=["n", "nope", "not now", "other", "others"],
)
PICK = words(none=["no", "neither", "nothing"])


# ------------------------------------------------------------------ identify


def ask_cuid(session: Session) -> Reply:
    return Reply.prompt("Please enter your CUID.", needs="cuid")


async def on_identify(services: Services, session: Session, text: str) -> Next:
    return await identify(services, session, text)


#: The one answer to every CUID that identifies nobody, unknown or malformed alike, so
#: that the replies never tell which CUIDs exist.
NOT_IDENTIFIED = (
    "I couldn't identify you with that CUID. A CUID is letters and digits, like AB1234; "
    "please check it and try again."
)


async def identify(services: Services, session: Session, cuid: str) -> Next:
    """Look the technician up by CUID, then start the day's work."""
    cuid = cuid.strip().upper()
    if not cuid.isalnum() or not cuid.isascii() or not 2 <= len(cuid) <= 16:
        return Next(Phase.IDENTIFY, [Reply.display(NOT_IDENTIFIED)])
    result = await services.tool(session, "find_technician", {"cuid": cuid}, step_id="identify")
    if not result.ok:
        if result.error_kind == "failed":
            text = NOT_IDENTIFIED
        else:
            text = f"I couldn't check your CUID just now: {result.message} Please try again."
        return Next(Phase.IDENTIFY, [Reply.display(text)])
    if session.phase is Phase.ENDED:
        session.completed, session.escalated = [], []
    session.cuid = cuid
    session.technician_name = str(result.outputs.get("name") or cuid)
    said = [Reply.display(f"Hi {session.technician_name}! Let me fetch your work orders.")]
    return (await run_task(services, session)).after(said)


async def run_task(services: Services, session: Session, *, avoid: str | None = None) -> Next:
    """Fetch and prioritise the technician's orders, then propose the most urgent workable one.

    ``avoid`` names an order that should not be proposed first (one just cancelled).
    Orders of a type no plan serves are never proposed: they are named as waiting.
    """
    assert session.cuid is not None
    result = await services.tool(session, "get_orders", {"cuid": session.cuid}, step_id="orders")
    if not result.ok:
        return Next(Phase.IDLE, [Reply.display(f"I couldn't fetch your orders: {result.message}")])
    orders: list[Order] = []
    for raw in result.outputs.get("orders") or []:
        try:
            orders.append(Order.model_validate(raw))
        except ValidationError:
            continue  # the work-order system validates on import; an odd record is skipped
    session.orders = [o for o in orders if services.plans.for_order_type(o.order_type)]
    session.waiting = [o for o in orders if not services.plans.for_order_type(o.order_type)]
    said = []
    if session.waiting:
        said.append(Reply.display(waiting_note(session.waiting)))
    if not session.orders:
        if not session.waiting:
            said.append(Reply.display("You have no open orders right now."))
        return Next(Phase.IDLE, said)
    if avoid and len(session.orders) > 1 and session.orders[0].order_id == avoid:
        session.orders.append(session.orders.pop(0))
    return Next(Phase.CONFIRM_ORDER, said)


def waiting_note(waiting: list[Order]) -> str:
    named = texts.listing([f"{o.order_id} ({o.order_type})" for o in waiting], "and")
    verb = "is" if len(waiting) == 1 else "are"
    return f"{named} {verb} waiting for a plan, so I can't guide you through it yet."


# ------------------------------------------------------------------ confirm and pick


def ask_confirm(session: Session) -> Reply:
    top = session.orders[0]
    return Reply.prompt(
        f"Your most urgent order is {texts.order_line(top)}. Shall we start it? (yes/no)",
        choices=CONFIRM.choices,
        data={"order": texts.order_card(top)},
    )


async def on_confirm(services: Services, session: Session, text: str) -> Next:
    answer = CONFIRM.match(text)
    if answer == "yes":
        return await start_order(services, session, session.orders[0])
    if answer == "no":
        if len(session.orders) < 2:
            return Next(Phase.IDLE, [Reply.display("That is your only open order.")])
        return Next(Phase.PICK_ORDER)
    return Next(Phase.CONFIRM_ORDER, [unclear(CONFIRM.choices)])


def pickable(session: Session) -> list[Order]:
    """The orders offered when the technician declines the proposed one."""
    return session.orders[1:] if len(session.orders) > 1 else session.orders


def ask_pick(session: Session) -> Reply:
    options = pickable(session)
    return Reply.prompt(
        "Which order would you like instead? Answer with its number, or 'none':\n"
        + texts.numbered(options),
        choices=[str(i) for i in range(1, len(options) + 1)] + PICK.choices,
        data={"orders": [texts.order_card(o) for o in options]},
    )


async def on_pick(services: Services, session: Session, text: str) -> Next:
    options = pickable(session)
    if PICK.match(text) == "none":
        return Next(Phase.IDLE, [Reply.display("No order picked.")])
    word = text.strip().lower().lstrip("#")
    chosen: Order | None = None
    if word.isascii() and word.isdigit() and 1 <= int(word) <= len(options):
        chosen = options[int(word) - 1]
    else:
        chosen = next((o for o in session.orders if o.order_id.lower() == word), None)
    if chosen is None:
        waiting = next((o for o in session.waiting if o.order_id.lower() == word), None)
        if waiting is not None:
            return Next(Phase.PICK_ORDER, [Reply.display(waiting_note([waiting]))])
        return Next(
            Phase.PICK_ORDER,
            [
                Reply.display(
                    f"Please answer with a number from 1 to {len(options)}, an order id, or 'none'."
                )
            ],
        )
    return await start_order(services, session, chosen)


async def start_order(services: Services, session: Session, order: Order) -> Next:
    """Load the plan for the order's type and run its first steps; an order parked by an
    escalation and handed back resumes at its step instead."""
    if order.order_id in session.parked:
        return await resume(services, session, order.order_id)
    plan = services.plans.for_order_type(order.order_type)
    if plan is None:  # the plans changed since the orders were fetched
        return Next(Phase.IDLE, [Reply.display(waiting_note([order]))])
    assert session.cuid is not None
    started = await services.tool(
        session,
        "start_order",
        {"order_id": order.order_id, "cuid": session.cuid},
        step_id="start",
        order_id=order.order_id,
    )
    if not started.ok:
        return Next(
            Phase.IDLE, [Reply.display(f"I couldn't start {order.order_id}: {started.message}")]
        )
    session.clear_order()
    session.order = order.model_copy(update={"status": "in_progress"})
    await services.start_plan(session, plan)
    lines = [f"Starting {order.order_id}: {plan.title}, {texts.plural(len(plan.steps), 'step')}."]
    lines += [f"{name}: {value}" for name, value in texts.order_details(order).items()]
    said = [Reply.display("\n".join(lines), data={"order": texts.order_card(order)})]
    return (await execute_plan_steps(services, session)).after(said)


SPECS = [
    PhaseSpec(Phase.IDENTIFY, ask_cuid, on_identify),
    PhaseSpec(Phase.CONFIRM_ORDER, ask_confirm, on_confirm, CONFIRM),
    PhaseSpec(Phase.PICK_ORDER, ask_pick, on_pick, PICK),
]
