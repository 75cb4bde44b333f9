"""Escalated orders parked at their step, and a dispatcher's hand-back of one.

Escalating an order parks it in the session (``Session.parked``): its plan
snapshot, step, values (sensitive ones sealed in the stored form) and pending
question. When a dispatcher hands it back (``Dispatch.hand_back`` adds it to
``Session.handed_back``), the technician is offered it the next time no order is
at hand: after the current order ends, when idle, or on coming back. Yes resumes
exactly at the parked step with the values kept; no leaves it among their
orders, where choosing it later resumes it the same way.
"""

from __future__ import annotations

from orchestrator_core.phases.base import Next, PhaseSpec, Services, unclear, words
from orchestrator_core.phases.steps import execute_plan_steps
from orchestrator_core.session import Phase, Session
from orchestrator_core.turns import Reply

HANDBACK = words(yes=["y", "yeah", "yep", "ok", "okay", "resume", "sure"], no=["n", "not now"])
#: Phases in which no order is at hand, so a handed-back one can be offered.
OFFER_IN = frozenset({Phase.IDLE, Phase.POST_TASK, Phase.CONFIRM_ORDER, Phase.PICK_ORDER})


def offered(session: Session, outcome: Next) -> Next:
    """``outcome``, or the offer of a handed-back order when one waits and none is at hand."""
    if outcome.phase not in OFFER_IN or not _waiting(session):
        return outcome
    session.return_phase = outcome.phase
    return Next(Phase.OFFER_HANDBACK, outcome.said)


#: Phases whose own answers are not yes or no: there, a yes or no after the hand-back
#: notice answers the offer straight away.
_ANSWERED_IN = frozenset({Phase.IDLE, Phase.POST_TASK})


def take_offer(session: Session, text: str) -> bool:
    """Whether ``text`` answers the offer of a handed-back order the technician was told of,
    though the question on screen was another (they answered the notice); the session is
    then put on the offer, to be answered by this turn."""
    if session.phase not in _ANSWERED_IN or HANDBACK.match(text) is None:
        return False
    if _waiting(session) is None:
        return False
    session.return_phase = session.phase
    session.phase = Phase.OFFER_HANDBACK
    return True


def _waiting(session: Session) -> str | None:
    """The first handed-back order still parked; stale entries are dropped."""
    session.handed_back = [o for o in session.handed_back if o in session.parked]
    return session.handed_back[0] if session.handed_back else None


def ask_handback(session: Session) -> Reply:
    order_id = _waiting(session)
    if order_id is None:  # nothing left to offer: the state says so
        return Reply.prompt("Nothing was handed back. Say anything to carry on.")
    parked = session.parked[order_id]
    return Reply.prompt(
        f"{order_id} is back with you from the dispatcher: "
        f"resume at step {parked.step_index + 1}? (yes/no)",
        choices=HANDBACK.choices,
        data={"order_id": order_id, "step": parked.step_index + 1},
    )


async def on_handback(services: Services, session: Session, text: str) -> Next:
    order_id = _waiting(session)
    back = session.return_phase or Phase.IDLE
    if order_id is None:
        session.return_phase = None
        return Next(back)
    answer = HANDBACK.match(text)
    if answer == "yes":
        session.return_phase = None
        return await resume(services, session, order_id)
    if answer == "no":
        session.return_phase = None
        session.handed_back.remove(order_id)
        return Next(
            back if back is not Phase.CONFIRM_ORDER or session.orders else Phase.IDLE,
            [Reply.display(f"OK. {order_id} stays with you: pick it when you're ready.")],
        )
    return Next(Phase.OFFER_HANDBACK, [unclear(HANDBACK.choices)])


async def resume(services: Services, session: Session, order_id: str) -> Next:
    """Take a parked order up again at its step, with its values."""
    parked = session.parked[order_id]
    assert session.cuid is not None
    started = await services.tool(
        session,
        "start_order",
        {"order_id": order_id, "cuid": session.cuid},
        step_id="start",
        order_id=order_id,
    )
    if not started.ok:
        # Not offered again (a closed order would be offered forever); while it is open,
        # choosing it among the orders tries again.
        session.handed_back = [o for o in session.handed_back if o != order_id]
        if started.error_kind == "failed":
            del session.parked[order_id]
        return Next(Phase.IDLE, [Reply.display(f"I couldn't resume {order_id}: {started.message}")])
    session.clear_order()
    fallback = services.plans.for_order_type(parked.order.order_type)
    plan = await services.resume_plan(session, parked.plan_digest, fallback)
    if plan is None:
        del session.parked[order_id]
        session.handed_back = [o for o in session.handed_back if o != order_id]
        return Next(
            Phase.IDLE,
            [Reply.display(f"I couldn't resume {order_id}: no plan serves its type any more.")],
        )
    del session.parked[order_id]
    session.handed_back = [o for o in session.handed_back if o != order_id]
    session.escalated = [o for o in session.escalated if o != order_id]
    session.order = parked.order.model_copy(update={"status": "in_progress"})
    session.step_index = min(parked.step_index, len(plan.steps))
    session.values = dict(parked.values)
    session.pending_param = parked.pending_param
    said = [
        Reply.display(
            f"Resuming {order_id} at step {session.step_index + 1} of {len(plan.steps)}.",
            data={"order_id": order_id, "step": session.step_index + 1, "steps": len(plan.steps)},
        )
    ]
    return (await execute_plan_steps(services, session)).after(said)


SPECS = [PhaseSpec(Phase.OFFER_HANDBACK, ask_handback, on_handback, HANDBACK)]
