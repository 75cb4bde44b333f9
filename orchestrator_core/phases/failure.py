"""A step's tool failed: offer only the ways out that can help.

A transient failure (a timeout, a system that did not answer) offers ``retry``;
a fault on site the technician can fix offers its confirmation word ("cleaned"),
which checks again; anything else offers neither. ``skip`` is offered where the
plan allows it, ``escalate`` always. A refused value never gets here: the
technician is asked for it again (see ``steps``).
"""

from __future__ import annotations

from orchestrator_core import texts
from orchestrator_core.phases.base import Next, PhaseSpec, Services, Vocabulary, Word, unclear
from orchestrator_core.phases.steps import (
    current_step,
    escalate_order,
    execute_plan_steps,
    skip_step,
)
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply

FAILURE = Vocabulary(
    Word("retry", frozenset({"try again", "again", "r"})),
    Word("skip"),
    Word("escalate", frozenset({"human", "escalate it"})),
)
#: Also understood after a fault, whatever its confirmation word: the technician fixed it.
FIXED = frozenset({"done", "fixed", "check again", "recheck"})
#: Understood but not offered: enter the step's values again.
EDIT = Word("edit", frozenset({"change", "re-enter", "reenter"}))


def offered(session: Session) -> list[str]:
    """The ways out of the current failure, in the order they are offered."""
    failure = session.failure
    step = current_step(session)
    choices: list[str] = []
    if failure is not None and failure.kind == "transient":
        choices.append("retry")
    if failure is not None and failure.kind == "fault" and failure.confirm:
        choices.append(failure.confirm)
    if step is not None and step.skippable:
        choices.append("skip")
    choices.append("escalate")
    return choices


def ask_failure(session: Session) -> Reply:
    failure = session.failure
    message = failure.message if failure is not None else "The last step failed."
    if failure is not None and failure.tries >= 3 and failure.kind == "transient":
        message += f" That is {failure.tries} failures in a row; escalating hands it to a human."
    choices = offered(session)
    if choices == ["escalate"]:
        ask = "Say escalate to hand this order to a human, or cancel to put it back in your queue."
    else:
        ask = f"What would you like to do: {texts.listing(choices)}?"
    step = current_step(session)
    return Reply.prompt(
        f"{message} {ask}",
        choices=choices,
        data={"step": step.id if step else None, "error": message},
    )


async def on_failure_choice(services: Services, session: Session, text: str) -> Next:
    choices = offered(session)
    failure = session.failure
    said = " ".join(text.strip().lower().split())
    fault = failure is not None and failure.kind == "fault" and failure.confirm
    if fault and failure is not None and (said == failure.confirm or said in FIXED):
        return await execute_plan_steps(services, session, extra=failure.retry_args)
    answer = FAILURE.match(text, choices)
    step = current_step(session)
    if answer == "retry":
        return await execute_plan_steps(services, session)
    if answer == "escalate":
        task = step.task if step else "Closing the order"
        reason = failure.message if failure is not None else f"{task} failed."
        return await escalate_order(services, session, reason)
    if answer == "skip":
        return await skip_step(services, session)
    if step is not None and step.parameters and EDIT.says(said):
        session.edit_queue = list(step.parameters)
        session.failure = None
        return Next(Phase.COLLECT)
    return Next(Phase.TOOL_FAILED, [unclear(choices)])


SPECS = [PhaseSpec(Phase.TOOL_FAILED, ask_failure, on_failure_choice, FAILURE)]
