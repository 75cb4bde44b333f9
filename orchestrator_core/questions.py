"""What the technician is asked and shown, rebuilt from the session: pure functions.

Every question a conversation can wait on is derived here from the session's
state, so a resumed or restarted conversation asks exactly the same question.
"""

from __future__ import annotations

from typing import Any

from orchestrator_core import texts
from orchestrator_core.params import mask
from orchestrator_core.plans import Plan, Step
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply


def pickable(session: Session) -> list[dict[str, Any]]:
    """The orders offered when the technician declines the proposed one."""
    return session.orders[1:] if len(session.orders) > 1 else session.orders


def current_step(plan: Plan, session: Session) -> Step | None:
    """The step the session stands on; ``None`` once every step has run."""
    return plan.steps[session.step_index] if session.step_index < len(plan.steps) else None


def help_text(session: Session, plan: Plan | None) -> str:
    """What can be said here: the commands, and the answers the question accepts."""
    lines = [
        "You can say, at any point:",
        "• status: where you are and the values so far",
        "• help: this list",
        "• quit: leave now; your progress is kept",
    ]
    if session.order is not None:
        lines.insert(2, "• skip: skip the current step, if it may be skipped")
        lines.insert(3, "• cancel: leave this order; it goes back to your queue")
    asked = question(session, plan)
    if asked.choices:
        lines.append("Answers accepted right now: " + ", ".join(asked.choices) + ".")
    return "\n".join(lines)


def status(session: Session, plan: Plan | None) -> Reply:
    """Where the conversation stands, with sensitive values masked."""
    if session.cuid is None:
        return Reply.display("You haven't identified yet.")
    data: dict[str, Any] = {
        "cuid": session.cuid,
        "phase": session.phase.value,
        "completed": list(session.completed),
    }
    lines = [f"Technician: {session.technician_name} ({session.cuid})"]
    if session.order is None:
        lines.append("No order in progress.")
    else:
        assert plan is not None
        values = masked(plan, session.values)
        lines.append(f"Order: {texts.order_line(session.order)}")
        if session.phase is Phase.POST_TASK:
            lines.append("All steps done.")
        else:
            lines.append(f"{step_label(plan, session)}: {current_task(plan, session)}")
        if values:
            lines.append("Values: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        data.update(
            order=texts.order_card(session.order),
            step=session.step_index + 1,
            steps=len(plan.steps),
            values=values,
        )
    lines.append(f"Open orders: {len(session.orders)}.")
    if session.completed:
        lines.append(f"Completed: {', '.join(session.completed)}")
    return Reply.display("\n".join(lines), data=data)


# ------------------------------------------------------------------ questions


def question(session: Session, plan: Plan | None) -> Reply:
    """The question the session is waiting on, rebuilt from its state."""
    phase = session.phase
    if phase is Phase.IDENTIFY:
        return Reply.prompt("Please enter your CUID.", needs="cuid")
    if phase is Phase.CONFIRM_ORDER:
        top = session.orders[0]
        return Reply.prompt(
            f"Your most urgent order is {texts.order_line(top)}. Shall we start it? (yes/no)",
            choices=["yes", "no"],
            data={"order": texts.order_card(top)},
        )
    if phase is Phase.PICK_ORDER:
        options = pickable(session)
        return Reply.prompt(
            "Which order would you like instead? Answer with its number, or 'none':\n"
            + texts.numbered(options),
            choices=[str(i) for i in range(1, len(options) + 1)] + ["none"],
            data={"orders": [texts.order_card(o) for o in options]},
        )
    if phase is Phase.COLLECT:
        assert plan is not None
        return param_question(session, plan)
    if phase is Phase.TOOL_FAILED:
        step = current_step(plan, session) if plan else None
        choices = ["retry"]
        if step is not None:
            choices += (["edit"] if step.parameters else []) + (["skip"] if step.skippable else [])
        choices.append("escalate")
        return Reply.prompt(
            f"{session.failure} What would you like to do: {', '.join(choices)}?",
            choices=choices,
            data={"step": step.id if step else None, "error": session.failure},
        )
    if phase is Phase.OFFER_ESCALATION:
        return Reply.prompt(
            "That's three tries. Would you like to try again, or escalate to a human?",
            choices=list(texts.ESCALATION_CHOICES),
        )
    if phase is Phase.POST_TASK:
        remaining = len(session.orders)
        return Reply.prompt(
            f"You have {texts.plural(remaining, 'open order')} left. "
            "What next: the next order, more help, or end?",
            choices=list(texts.POST_TASK_CHOICES),
            data={"remaining": remaining},
        )
    if phase is Phase.HELP_TEXT:
        return Reply.prompt("What do you need help with? I'll pass it to a human.", needs="help")
    if phase is Phase.CANCEL_REASON:
        order_id = session.order["order_id"] if session.order else "this order"
        return Reply.prompt(f"Why are you leaving {order_id}?", needs="reason")
    if phase is Phase.IDLE:
        return Reply.prompt(
            "Would you like to see your orders again, get help from a human, or end?",
            choices=list(texts.IDLE_CHOICES),
        )
    return Reply.prompt("Say anything to start again.")


def param_question(session: Session, plan: Plan) -> Reply:
    """The question for the parameter being collected (or entered again)."""
    step = plan.steps[session.step_index]  # COLLECT always stands on a step
    name = session.edit_queue[0] if session.edit_queue else session.pending_param
    assert name is not None
    param = plan.parameter(name)
    text = param.prompt
    if param.example and param.example not in text:
        text += f" (e.g. {param.example})"
    if session.edit_queue and name in session.values:
        current = mask(session.values[name]) if param.sensitive else session.values[name]
        text += f" Currently {current}; say 'keep' to keep it."
    header = f"{step_label(plan, session)}: {step.task}"
    choices = list(param.choices or [])
    if param.type.value == "boolean":
        choices = ["yes", "no"]
    return Reply.prompt(f"{header}\n{text}", needs=name, choices=choices)


def where_you_stand(session: Session, plan: Plan | None) -> Reply:
    """The greeting of a resumed conversation: which order and step it is on."""
    name = session.technician_name or session.cuid
    if session.order is None:
        return Reply.display(f"Welcome back, {name}.")
    assert plan is not None
    return Reply.display(
        f"Welcome back, {name}. You're on order {session.order['order_id']} "
        f"({session.order['order_type']}), {step_label(plan, session).lower()}: "
        f"{current_task(plan, session)}.",
        data={
            "order": texts.order_card(session.order),
            "step": session.step_index + 1,
            "steps": len(plan.steps),
        },
    )


def step_label(plan: Plan, session: Session) -> str:
    return f"Step {min(session.step_index + 1, len(plan.steps))} of {len(plan.steps)}"


def current_task(plan: Plan, session: Session) -> str:
    if session.step_index >= len(plan.steps):
        return "finishing up"
    return plan.steps[session.step_index].task


def masked(plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
    """The values with those the plan marks sensitive masked."""
    sensitive = plan.sensitive_names()
    return {k: (mask(v) if k in sensitive else v) for k, v in values.items()}
