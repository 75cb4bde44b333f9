"""``execute_plan_steps``: collect and check the values a step needs, run its tool, store
its outputs, and turn a tool's failure into the ways out that can help."""

from __future__ import annotations

from typing import Any

from orchestrator_core import texts
from orchestrator_core.conditions import evaluate
from orchestrator_core.inner_agent import ToolResult
from orchestrator_core.params import (
    Invalid,
    Parameter,
    ParamType,
    mask,
    parse_values,
    validate_value,
)
from orchestrator_core.phases.base import Next, PhaseSpec, Services, unclear, words
from orchestrator_core.plans import (
    ORDER_PREFIX,
    Plan,
    Step,
    done_message,
    label,
    order_value,
    output_value,
    readable,
    step_inputs,
)
from orchestrator_core.session import Failure, ParkedOrder, Phase, Session
from orchestrator_core.turns import Reply

#: Bad values in a row before escalation is offered.
MAX_BAD_ATTEMPTS = 3

#: The arguments every ``escalate`` tool takes; the others (the dispatcher's context) only
#: go to one that accepts them.
ESCALATE_BASICS = frozenset({"cuid", "order_id", "reason", "kind"})

ESCALATION = words(try_again=["retry", "again", "try"], escalate=["human", "escalate it"])


def working_plan(session: Session) -> Plan:
    """The plan of a session that is in the middle of one (a broken state is a bug)."""
    if session.plan is None:
        raise RuntimeError(f"session {session.key.as_str()} is in {session.phase} with no plan")
    return session.plan


def current_step(session: Session) -> Step | None:
    """The step the session stands on; ``None`` between orders or once every step has run."""
    plan = session.plan
    if plan is None or session.step_index >= len(plan.steps):
        return None
    return plan.steps[session.step_index]


def step_label(plan: Plan, session: Session) -> str:
    return f"Step {min(session.step_index + 1, len(plan.steps))} of {len(plan.steps)}"


def masked(plan: Plan, values: dict[str, Any]) -> dict[str, Any]:
    """The values with those the plan marks sensitive masked."""
    sensitive = plan.sensitive_names()
    return {k: (mask(v) if k in sensitive else v) for k, v in values.items()}


def _order(session: Session) -> dict[str, Any]:
    """The current order's fields as plans read them; empty between orders."""
    return texts.order_fields(session.order) if session.order is not None else {}


# ------------------------------------------------------------------ running the steps


async def execute_plan_steps(
    services: Services, session: Session, *, extra: dict[str, Any] | None = None
) -> Next:
    """Run steps from the current one until a value is needed, a tool fails, or the end.

    ``extra`` is added to the first tool call's arguments (a re-check after a fix).
    """
    plan = working_plan(session)
    order = _order(session)
    said: list[Reply] = []
    while session.step_index < len(plan.steps):
        forget_spent_secrets(session, plan)
        step = plan.steps[session.step_index]
        if step.when is not None and not evaluate(step.when, session.values):
            said.append(Reply.display(f"{step_label(plan, session)} not needed: {step.task}"))
            session.step_index += 1
            continue
        missing = [name for name in step.parameters if not _known(session, order, name)]
        if missing:
            session.pending_param = missing[0]
            return Next(Phase.COLLECT, said)
        gap = _order_gap(session, order, step)
        if gap is not None:
            field, fallback = gap
            session.pending_param = fallback
            session.why = f"This order has no {label(field).lower()} recorded."
            return Next(Phase.COLLECT, said)
        if step.tool is None:
            said.append(Reply.display(_done(plan, step, order, session)))
            session.step_index += 1
            continue
        result = await _run_step(services, session, plan, step, order, extra or {})
        extra = None
        if not result.ok:
            return _failed(session, plan, step, result).after(said)
        for name, key in step.outputs.items():
            value = output_value(result.outputs, key)
            if value is not None:
                session.values[name] = value
        session.failure = None
        session.bad_attempts = 0
        said.append(
            Reply.display(
                _done(plan, step, order, session),
                data={"step": step.id, "result": masked(plan, result.outputs)},
            )
        )
        session.step_index += 1
    forget_spent_secrets(session, plan)
    return (await finish_order(services, session, plan)).after(said)


def forget_spent_secrets(session: Session, plan: Plan) -> None:
    """Drop the sensitive values no step from the current one on needs.

    A sensitive value (the customer's Wi-Fi password) is kept only while a step
    still to run reads it: once its step is done or skipped it leaves the session.
    """
    held = plan.sensitive_names() & session.values.keys()
    if not held:
        return
    needed: set[str] = set()
    for step in plan.steps[session.step_index :]:
        needed.update(step.parameters, step.inputs.values(), step.fallbacks.values())
    for name in held - needed:
        del session.values[name]


def _done(plan: Plan, step: Step, order: dict[str, Any], session: Session) -> str:
    """The step's success message, reading the order's fields and the collected values."""
    return done_message(plan, step, {**order, **session.values}) or f"Done: {step.task}"


def _known(session: Session, order: dict[str, Any], name: str) -> bool:
    """Whether a value is known; a valid value the order carries is copied into the session.

    An order's field or detail of the same name that the parameter would refuse (an
    export's ``model: false``) is not a value: the technician is asked for it.
    """
    if name in session.values:
        return True
    param = working_plan(session).parameter(name)
    value = order_value(order, name)
    # A yes/no question is about now ("is the customer online?"): an export cannot answer it.
    if value is None or param.type is ParamType.BOOLEAN:
        return False
    checked = validate_value(param, value)
    if isinstance(checked, Invalid):
        return False
    session.values[name] = checked.value
    return True


def _order_gap(session: Session, order: dict[str, Any], step: Step) -> tuple[str, str] | None:
    """An order field the step's tool reads that the order lacks, with the parameter that
    asks for it instead: ``(field, parameter)``."""
    for arg, ref in step.inputs.items():
        fallback = step.fallbacks.get(arg)
        if fallback is None or fallback in session.values or not ref.startswith(ORDER_PREFIX):
            continue
        field = ref[len(ORDER_PREFIX) :]
        if order_value(order, field) is None:
            return field, fallback
    return None


async def _run_step(
    services: Services,
    session: Session,
    plan: Plan,
    step: Step,
    order: dict[str, Any],
    extra: dict[str, Any],
) -> ToolResult:
    assert step.tool is not None and session.order is not None
    args = {**step_inputs(plan, step, session.values, order, session.cuid), **extra}
    spec = services.agent.registry.get(step.tool)
    await services.progress(f"{spec.action if spec else step.task}…")
    secret = plan.sensitive_names()
    # A tool argument fed by a sensitive value is masked in the audit whatever it is called.
    renamed = {arg for arg, ref in step.inputs.items() if ref in secret}
    renamed |= {arg for arg, name in step.fallbacks.items() if name in secret}
    return await services.tool(
        session,
        step.tool,
        args,
        step_id=step.id,
        order_id=session.order.order_id,
        sensitive=secret | renamed if renamed else secret,
    )


def _failed(session: Session, plan: Plan, step: Step, result: ToolResult) -> Next:
    """The way on after a step's tool failed, chosen by what can fix the failure."""
    if result.refused and result.error_kind in ("refused", "bad_arguments"):
        again = _to_enter_again(session, step, result.refused)
        if again is not None:
            return _enter_again(session, plan, again, result.message)
        if result.error_kind == "bad_arguments":
            missing = [step.inputs.get(arg, arg) for arg in result.refused]
            fields = [label(ref.removeprefix(ORDER_PREFIX)).lower() for ref in missing]
            result = result.model_copy(
                update={
                    "message": f"{step.task} needs the {texts.listing(fields, 'and')}, "
                    "which this order does not have."
                }
            )
    earlier = session.failure
    tries = earlier.tries + 1 if earlier is not None else 1
    if result.error_kind in ("transient", "timeout", "internal"):
        failure = Failure(message=result.message or f"{step.task} failed.", kind="transient")
    elif result.error_kind == "fault" and result.confirm:
        message = f"{result.message} {result.remedy}".strip()
        failure = Failure(
            message=f"{message}, then say “{result.confirm}” to check again.".replace(".,", ","),
            kind="fault",
            confirm=result.confirm.lower(),
            retry_args=dict(result.retry_args),
        )
    else:
        failure = Failure(message=result.message or f"{step.task} failed.", kind="failed")
    session.failure = failure.model_copy(update={"tries": tries})
    return Next(Phase.TOOL_FAILED)


def _to_enter_again(session: Session, step: Step, refused: tuple[str, ...]) -> list[str] | None:
    """The parameters to ask again for the refused tool arguments, or ``None`` when one of
    them is nothing the technician can give (an earlier step's output, an order field the
    plan has no question for)."""
    names: list[str] = []
    for arg in refused:
        fallback = step.fallbacks.get(arg)
        ref = step.inputs.get(arg, arg)
        if fallback is not None:
            names.append(fallback)
        elif ref in step.parameters:
            names.append(ref)
        else:
            return None
    return list(dict.fromkeys(names)) or None


def _enter_again(session: Session, plan: Plan, names: list[str], message: str) -> Next:
    """Ask again for refused values; the step's other values stay and are shown."""
    session.edit_queue = names
    session.failure = None
    step = plan.steps[session.step_index]
    staying = [
        f"{plan.parameter(n).title} ({readable(masked(plan, session.values)[n])})"
        for n in step.parameters
        if n not in names and n in session.values
    ]
    why = message.strip()
    if staying:
        why += f" These stay as they are: {texts.listing(staying, 'and')}."
    session.why = why
    return _count_bad(session, Next(Phase.COLLECT))


def _count_bad(session: Session, then: Next) -> Next:
    """Count a bad value; the third in a row offers escalation instead of asking again."""
    session.bad_attempts += 1
    if session.bad_attempts >= MAX_BAD_ATTEMPTS:
        return Next(Phase.OFFER_ESCALATION, then.said)
    return then


# ------------------------------------------------------------------ collecting values


def pending(session: Session) -> str | None:
    return session.edit_queue[0] if session.edit_queue else session.pending_param


def ask_value(session: Session) -> Reply:
    """The question for the parameter being collected (or entered again)."""
    plan = working_plan(session)
    step = plan.steps[session.step_index]  # COLLECT always stands on a step
    name = pending(session)
    assert name is not None
    param = plan.parameter(name)
    text = param.prompt
    if param.example and param.example not in text:
        text += f" (e.g. {param.example})"
    # A value refused alone is wrong; of several refused together, any one may be right.
    keepable = len(session.edit_queue) > 1 or not session.why
    if session.edit_queue and name in session.values and keepable:
        current = mask(session.values[name]) if param.sensitive else session.values[name]
        text += f" Currently {readable(current)}; say 'keep' to keep it."
    if session.why:
        text = f"{session.why} {text}"
    choices = ["yes", "no"] if param.type.value == "boolean" else list(param.choices or [])
    return Reply.prompt(
        f"{step_label(plan, session)}: {step.task}\n{text}", needs=name, choices=choices
    )


async def on_value(services: Services, session: Session, text: str) -> Next:
    plan = working_plan(session)
    name = pending(session)
    if name is None:  # Nothing asked: the state says so; recompute what is needed.
        return await execute_plan_steps(services, session)
    said: list[Reply] = []
    given = parse_values(text)
    if given is not None:
        ours = {k: v for k, v in given.items() if k in plan.parameters}
        unused = sorted(set(given) - set(ours))
        if ours and unused:
            said.append(Reply.display(f"I don't use {', '.join(unused)} here, so I ignored it."))
        problem = None
        for key, raw in ours.items():
            checked = validate_value(plan.parameter(key), raw)
            if isinstance(checked, Invalid):
                if key == name:
                    problem = checked.reason
                else:
                    said.append(_invalid(plan.parameter(key), checked.reason))
                continue
            _take(session, key, checked.value)
        if problem is not None:
            return _bad_value(session, plan.parameter(name), problem).after(said)
        if name not in ours:
            param = plan.parameter(name)
            said.append(
                Reply.display(
                    f"I need {param.title} ({name}); your message gave {', '.join(sorted(given))}."
                )
            )
            return _count_bad(session, Next(Phase.COLLECT, said))
    elif session.edit_queue and text.lower() == "keep" and name in session.values:
        session.edit_queue.pop(0)
    else:
        checked = validate_value(plan.parameter(name), text)
        if isinstance(checked, Invalid):
            return _bad_value(session, plan.parameter(name), checked.reason)
        _take(session, name, checked.value)
    if session.why is None:
        # A value asked again after the tool refused it is good only once the tool takes it
        # (a step that succeeds resets the count): refusals in a row add up to three.
        session.bad_attempts = 0
    if session.edit_queue:
        return Next(Phase.COLLECT, said)
    session.why = None
    return (await execute_plan_steps(services, session)).after(said)


def _take(session: Session, name: str, value: Any) -> None:
    session.values[name] = value
    if name in session.edit_queue:
        session.edit_queue.remove(name)


def _invalid(param: Parameter, reason: str) -> Reply:
    example = f" For example: {param.example}." if param.example else ""
    title = param.title[:1].upper() + param.title[1:]
    return Reply.display(f"{title} isn't valid: {reason}.{example}".replace("..", "."))


def _bad_value(session: Session, param: Parameter, reason: str) -> Next:
    return _count_bad(session, Next(Phase.COLLECT, [_invalid(param, reason)]))


# ------------------------------------------------------------------ three bad values


def ask_escalation(session: Session) -> Reply:
    return Reply.prompt(
        "That's three tries. Would you like to try again, or escalate to a human?",
        choices=ESCALATION.choices,
    )


async def on_escalation_choice(services: Services, session: Session, text: str) -> Next:
    answer = ESCALATION.match(text)
    if answer == "try again":
        session.bad_attempts = 0
        return Next(Phase.COLLECT)
    if answer == "escalate":
        name = pending(session)
        title = working_plan(session).parameter(name).title if name else "value"
        return await escalate_order(
            services,
            session,
            f"Could not enter a valid {title} after {MAX_BAD_ATTEMPTS} attempts.",
        )
    return Next(Phase.OFFER_ESCALATION, [unclear(ESCALATION.choices)])


# ------------------------------------------------------------------ leaving a step or an order


async def skip_step(services: Services, session: Session) -> Next:
    step = current_step(session)
    if step is None:
        return Next(session.phase, [Reply.display("There is no step to skip right now.")])
    if not step.skippable:
        return Next(session.phase, [Reply.display(f"“{step.task}” can't be skipped.")])
    session.step_index += 1
    session.edit_queue = []
    session.failure = None
    session.why = None
    session.bad_attempts = 0
    said = [Reply.display(f"Skipped: {step.task}")]
    return (await execute_plan_steps(services, session)).after(said)


async def escalate_order(
    services: Services, session: Session, reason: str, *, words: str | None = None
) -> Next:
    """Hand the current order to a human; it is parked at its step, and the technician
    moves on. A dispatcher may hand it back (``phases/handback.py``)."""
    assert session.order is not None and session.cuid is not None
    order_id = session.order.order_id
    result = await escalate(services, session, reason, kind="order", order_id=order_id, words=words)
    if not result.ok:
        said = (
            f"I couldn't escalate just now: {result.message} Please try again."
            if result.transient
            else f"I couldn't escalate: {result.message}"
        )
        return Next(session.phase, [Reply.display(said)])
    ticket = str(result.outputs.get("escalation_id", ""))
    park(session, ticket or None)
    session.escalated.append(order_id)
    session.orders = [o for o in session.orders if o.order_id != order_id]
    session.clear_order()
    return Next(
        Phase.POST_TASK,
        [
            Reply.display(
                f"I've escalated {order_id} to a human ({ticket}). They will contact you.",
                data={"escalation_id": ticket, "order_id": order_id},
            )
        ],
    )


def park(session: Session, escalation_id: str | None) -> None:
    """Keep the current order as it stands, under its id, before it is cleared."""
    order, plan = session.order, session.plan
    if order is None or plan is None or session.plan_digest is None:
        return
    session.parked[order.order_id] = ParkedOrder(
        order=order,
        plan_digest=session.plan_digest,
        step_index=session.step_index,
        values=dict(session.values),
        pending_param=session.pending_param,
        sensitive=sorted(plan.sensitive_names()),
        escalation_id=escalation_id,
    )


async def escalate(
    services: Services,
    session: Session,
    reason: str,
    *,
    kind: str,
    order_id: str | None,
    words: str | None = None,
) -> ToolResult:
    """Record an escalation for a human: an order handed over, or a request for help.

    What a dispatcher needs goes with it: the conversation's key, the step it stands
    on (id, k of n), the technician's words and the values so far, sensitive ones
    masked.
    """
    args: dict[str, Any] = {
        "cuid": session.cuid,
        "order_id": order_id,
        "reason": reason,
        "kind": kind,
        "session_key": session.key.as_str(),
        "words": words or reason,
    }
    plan = session.plan
    step = current_step(session)
    if plan is not None and session.order is not None:
        args["params"] = masked(plan, session.values)
        args["step_no"] = min(session.step_index + 1, len(plan.steps))
        args["step_of"] = len(plan.steps)
        if step is not None:
            args["step"] = step.id
    spec = services.agent.registry.get("escalate")
    if spec is not None:  # an escalate declared in a tools file may take only the basics
        args = {k: v for k, v in args.items() if k in spec.accepted or k in ESCALATE_BASICS}
    result = await services.tool(session, "escalate", args, step_id=kind, order_id=order_id)
    if result.ok and result.outputs.get("escalation_id"):
        await services.escalated(str(result.outputs["escalation_id"]))
    return result


async def finish_order(services: Services, session: Session, plan: Plan) -> Next:
    assert session.order is not None
    order_id = session.order.order_id
    said: list[Reply] = []
    if not any(s.tool == "close_order" for s in plan.steps):
        # A plan without its own closing step still closes the order.
        closed = await services.tool(
            session, "close_order", {"order_id": order_id}, step_id="close", order_id=order_id
        )
        if not closed.ok:
            kind = "transient" if closed.error_kind in ("transient", "timeout") else "failed"
            session.failure = Failure(message=closed.message, kind=kind)
            return Next(Phase.TOOL_FAILED)
        said.append(Reply.display(f"Order {order_id} is closed.", data={"order_id": order_id}))
    session.completed.append(order_id)
    session.orders = [o for o in session.orders if o.order_id != order_id]
    return Next(Phase.POST_TASK, said)


SPECS = [
    PhaseSpec(Phase.COLLECT, ask_value, on_value),
    PhaseSpec(Phase.OFFER_ESCALATION, ask_escalation, on_escalation_choice, ESCALATION),
]
