"""``post_task_interaction``: after an order, the next one, help from a human, or the end;
and the phases between orders (idle, a request for help, leaving an order, ended)."""

from __future__ import annotations

from orchestrator_core import texts
from orchestrator_core.phases.base import Next, PhaseSpec, Services, unclear, words
from orchestrator_core.phases.orders import run_task
from orchestrator_core.phases.steps import escalate
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply

POST_TASK = words(next=["next order", "n"], help=["more help", "human"], end=["done", "bye"])
IDLE = words(
    orders=["order", "next", "refresh", "my orders"],
    help=["more help", "human"],
    end=["done", "bye"],
)
#: Answers that take back a cancel before a reason was given.
BACK = words(back=["never mind", "nevermind"])


def open_orders_left(session: Session) -> str:
    left = f"You have {texts.plural(len(session.orders), 'open order')} left"
    if session.waiting:
        left += f" (and {len(session.waiting)} waiting for a plan)"
    return left


def ask_post_task(session: Session) -> Reply:
    return Reply.prompt(
        f"{open_orders_left(session)}. What next: the next order, more help, or end?",
        choices=POST_TASK.choices,
        data={"remaining": len(session.orders)},
    )


async def post_task_interaction(services: Services, session: Session, text: str) -> Next:
    """After an order: the next order, help from a human, or the end of the conversation."""
    answer = POST_TASK.match(text)
    if answer == "next":
        session.clear_order()
        step = await run_task(services, session)
        if step.phase is Phase.IDLE and not session.orders and not session.waiting:
            return Next(Phase.IDLE, [Reply.display("There are no more open orders.")])
        return step
    if answer == "help":
        return ask_for_help(session)
    if answer == "end":
        return end(session)
    return Next(Phase.POST_TASK, [unclear(POST_TASK.choices)])


def ask_idle(session: Session) -> Reply:
    return Reply.prompt(
        "Would you like to see your orders again, get help from a human, or end?",
        choices=IDLE.choices,
    )


async def on_idle(services: Services, session: Session, text: str) -> Next:
    answer = IDLE.match(text)
    if answer == "orders":
        return await run_task(services, session)
    if answer == "help":
        return ask_for_help(session)
    if answer == "end":
        return end(session)
    return Next(Phase.IDLE, [unclear(IDLE.choices)])


# ------------------------------------------------------------------ help from a human


def ask_for_help(session: Session) -> Next:
    session.return_phase = session.phase
    return Next(Phase.HELP_TEXT)


def ask_help_text(session: Session) -> Reply:
    return Reply.prompt("What do you need help with? I'll pass it to a human.", needs="help")


async def on_help_text(services: Services, session: Session, text: str) -> Next:
    if not text:
        return Next(Phase.HELP_TEXT, [Reply.display("Please describe what you need.")])
    order_id = session.order.order_id if session.order else None
    result = await escalate(services, session, text, kind="help", order_id=order_id)
    if not result.ok and not result.transient:
        back = session.return_phase or Phase.IDLE
        session.return_phase = None
        return Next(back, [Reply.display(f"I couldn't pass that on: {result.message}")])
    if not result.ok:
        return Next(
            Phase.HELP_TEXT,
            [
                Reply.display(
                    f"I couldn't pass that on just now: {result.message} Please send it again."
                )
            ],
        )
    back = session.return_phase or Phase.IDLE
    session.return_phase = None
    ticket = result.outputs.get("escalation_id", "")
    return Next(
        back,
        [
            Reply.display(
                f"Thanks, I've passed that to a human ({ticket}). Someone will get back to you.",
                data={"escalation_id": ticket},
            )
        ],
    )


# ------------------------------------------------------------------ leaving an order


def ask_cancel_reason(session: Session) -> Reply:
    order_id = session.order.order_id if session.order else "this order"
    return Reply.prompt(f"Why are you leaving {order_id}? (or 'back' to carry on)", needs="reason")


async def on_cancel_reason(services: Services, session: Session, text: str) -> Next:
    if not text:
        return Next(Phase.CANCEL_REASON, [Reply.display("Please give a short reason.")])
    if BACK.match(text):
        back = session.return_phase or Phase.COLLECT
        session.return_phase = None
        return Next(back, [Reply.display("OK, carrying on.")])
    assert session.order is not None
    order_id = session.order.order_id
    result = await services.tool(
        session,
        "release_order",
        {"order_id": order_id, "reason": text},
        step_id="cancel",
        order_id=order_id,
    )
    if not result.ok:
        return Next(
            Phase.CANCEL_REASON,
            [Reply.display(f"I couldn't release {order_id}: {result.message}")],
        )
    session.clear_order()
    session.return_phase = None
    said = [Reply.display(f"Left {order_id}; it is back in your queue.")]
    return (await run_task(services, session, avoid=order_id)).after(said)


# ------------------------------------------------------------------ the end


def end(session: Session) -> Next:
    done = ", ".join(session.completed) or "none"
    lines = [f"Orders completed this session: {done}."]
    if session.escalated:
        lines.append(f"Handed to a human: {', '.join(session.escalated)}.")
    lines.append("Thanks for your work today. Goodbye!")
    session.clear_order()
    return Next(
        Phase.ENDED,
        [
            Reply.display(
                "\n".join(lines),
                data={"completed": list(session.completed), "escalated": list(session.escalated)},
            )
        ],
    )


def ask_ended(session: Session) -> Reply:
    return Reply.prompt("Say anything to start again.")


async def on_ended(services: Services, session: Session, text: str) -> Next:
    session.completed, session.escalated = [], []
    said = [Reply.display(f"Welcome back, {session.technician_name}!")]
    return (await run_task(services, session)).after(said)


SPECS = [
    PhaseSpec(Phase.POST_TASK, ask_post_task, post_task_interaction, POST_TASK),
    PhaseSpec(Phase.IDLE, ask_idle, on_idle, IDLE),
    PhaseSpec(Phase.HELP_TEXT, ask_help_text, on_help_text),
    PhaseSpec(Phase.CANCEL_REASON, ask_cancel_reason, on_cancel_reason, BACK),
    PhaseSpec(Phase.ENDED, ask_ended, on_ended),
]
