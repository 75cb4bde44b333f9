"""What a technician can say at any point: help, status, skip, cancel, escalate, quit."""

from __future__ import annotations

from typing import Any

from orchestrator_core import texts
from orchestrator_core.phases.base import Next, Services, words
from orchestrator_core.phases.steps import (
    current_step,
    escalate_order,
    masked,
    skip_step,
    step_label,
)
from orchestrator_core.plans import readable
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply

COMMANDS = words(
    help=["?", "commands"],
    status=["where am i"],
    skip=[],
    cancel=[],
    escalate=[],
    quit=["exit", "q"],
)
#: Phases in which an order's step is at hand: skip and escalate mean something there.
IN_PLAN = frozenset({Phase.COLLECT, Phase.TOOL_FAILED, Phase.OFFER_ESCALATION})

GOODBYE = (
    "Goodbye for now. Your progress is saved: come back any time to pick up where you left off."
)


def current_task(session: Session) -> str:
    step = current_step(session)
    return step.task if step is not None else "finishing up"


def help_text(session: Session, asked: Reply) -> str:
    """What can be said here: the commands, and the answers the question accepts."""
    lines = [
        "You can say, at any point:",
        "• status: where you are and the values so far",
        "• help: this list",
        "• quit: leave now; your progress is kept",
    ]
    if session.order is not None:
        lines[2:2] = [
            "• skip: skip the current step, if it may be skipped",
            "• cancel: leave this order; it goes back to your queue",
            "• escalate: hand this order to a human; add what is wrong for the dispatcher"
            " (escalate the cabinet is locked)",
        ]
    if asked.choices:
        lines.append("Answers accepted right now: " + ", ".join(asked.choices) + ".")
    return "\n".join(lines)


def status(session: Session) -> Reply:
    """Where the conversation stands, with sensitive values masked."""
    if session.cuid is None:
        return Reply.display("You haven't identified yet.")
    data: dict[str, Any] = {
        "cuid": session.cuid,
        "phase": session.phase.value,
        "completed": list(session.completed),
    }
    lines = [f"Technician: {session.technician_name} ({session.cuid})"]
    plan = session.plan
    if session.order is None or plan is None:
        lines.append("No order in progress.")
    else:
        values = masked(plan, session.values)
        lines.append(f"Order: {texts.order_line(session.order)}")
        if session.phase is Phase.POST_TASK:
            lines.append("All steps done.")
        else:
            lines.append(f"{step_label(plan, session)}: {current_task(session)}")
        shown = {k: readable(v) for k, v in values.items() if readable(v) != ""}
        if shown:
            lines.append("Values: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
        data.update(
            order=texts.order_card(session.order),
            step=session.step_index + 1,
            steps=len(plan.steps),
            values=values,
        )
    lines.append(f"Open orders: {len(session.orders)}.")
    if session.waiting:
        lines.append(f"Waiting for a plan: {', '.join(o.order_id for o in session.waiting)}.")
    if session.completed:
        lines.append(f"Completed: {', '.join(session.completed)}")
    return Reply.display("\n".join(lines), data=data)


def where_you_stand(session: Session) -> Reply:
    """The greeting of a resumed conversation: which order and step it is on."""
    name = session.technician_name or session.cuid
    plan = session.plan
    if session.order is None or plan is None:
        return Reply.display(f"Welcome back, {name}.")
    return Reply.display(
        f"Welcome back, {name}. You're on order {session.order.order_id} "
        f"({session.order.order_type}), {step_label(plan, session).lower()}: "
        f"{current_task(session)}.",
        data={
            "order": texts.order_card(session.order),
            "step": session.step_index + 1,
            "steps": len(plan.steps),
        },
    )


def escalation_words(session: Session, text: str) -> str | None:
    """The words after ``escalate`` in "escalate the cabinet is locked", said at a step of
    an order, for the dispatcher; ``None`` when the message is not that (elsewhere, as in a
    request for help, the words are the message itself)."""
    if session.phase not in IN_PLAN or session.order is None:
        return None
    head, _, rest = text.strip().partition(" ")
    if head.lower().rstrip(":,") != "escalate" or not rest.strip():
        return None
    return " ".join(rest.split())


async def run_command(
    services: Services, session: Session, command: str, asked: Reply, *, words: str | None = None
) -> Next:
    """Carry out a command; ``asked`` is the question the conversation was waiting on.

    ``words``: what the technician said with ``escalate``, passed on to the dispatcher.
    """
    here = session.phase
    if command == "quit":
        session.paused = True
        return Next(here, [Reply.display(GOODBYE)])
    if command == "help":
        return Next(here, [Reply.display(help_text(session, asked))])
    if command == "status":
        return Next(here, [status(session)])
    in_plan = session.plan is not None and here in IN_PLAN
    if command == "skip":
        if not in_plan:
            return Next(here, [Reply.display("There is no step to skip right now.")])
        return await skip_step(services, session)
    if command == "escalate":
        if session.order is None or session.plan is None:
            return Next(here, [Reply.display("There is no order in progress to escalate.")])
        reason = f"The technician asked for a human at {current_task(session).lower()}."
        if session.failure is not None:
            reason = session.failure.message
        return await escalate_order(services, session, reason, words=words)
    # cancel
    if session.order is None or here is Phase.CANCEL_REASON:
        return Next(here, [Reply.display("There is no order in progress to cancel.")])
    session.return_phase = here
    return Next(Phase.CANCEL_REASON)
