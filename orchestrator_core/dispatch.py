"""The human side of escalation: the queue a dispatcher works, and what reaches the technician.

``Dispatch`` is what the console and the Slack dispatch channel call. An
escalation moves ``open`` -> ``taken`` (one operator) -> ``answered`` (the taker,
any number of times) -> ``closed``, with an outcome: ``closed`` (nothing more to
do), ``handed_back`` (the order goes back to the technician at the step where it
stood) or ``cancelled`` (the order is cancelled, with a reason). Each move is one
conditional write in the work-order database, so of two operators taking the same
escalation exactly one wins; a move that is not allowed is a ``DispatchError``
whose message is for the operator, and changes nothing.

What a technician must hear (an answer, a hand-back, a cancellation) goes through
``Orchestrator.notify``, so it reaches them on whatever bridge they use. The core
imports no bridge: the Slack dispatch channel hears of new escalations through
``subscribe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from orchestrator_core.audit import AuditLog
from orchestrator_core.errors import StaleVersionError, TechAssistError
from orchestrator_core.notices import NoticeKind
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.orders import as_utc
from orchestrator_core.params import MASK
from orchestrator_core.plans import Plan
from orchestrator_core.session import Session
from orchestrator_core.turns import SessionKey, encodable
from orchestrator_core.workorders import WorkOrders

log = logging.getLogger("techassist.dispatch")

ESCALATION_STATUSES = ("open", "taken", "answered", "closed")
OUTCOMES = ("handed_back", "cancelled", "closed")
#: The longest answer or cancel reason an operator may send.
MAX_TEXT = 4000
#: Where an operator may act once the escalation is theirs.
_THEIRS = ("taken", "answered")


class DispatchError(Exception):
    """An operator's action was refused; the message says why, for the operator."""


@dataclass(frozen=True)
class Escalation:
    """One escalation as the dispatcher sees it; sensitive parameters are masked."""

    id: str
    status: str
    cuid: str
    order_id: str | None
    kind: str
    words: str
    step: int | None
    """The step it stood on, counted from 1 (``None`` without an order)."""
    of: int | None
    """How many steps the order's plan has."""
    params: dict[str, Any]
    operator: str | None
    answer: str | None
    session_key: str | None
    created_at: float
    updated_at: float
    outcome: str | None
    step_id: str | None = None
    reason: str = ""
    sent_to: str | None = None
    """Only on what ``answer`` returns: the session key of the conversation the answer went
    to (the technician's most recently active one), for the console to show."""

    def as_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class LiveSession:
    """One conversation as the console lists it."""

    key: str
    cuid: str | None
    name: str | None
    bridge: str
    phase: str
    order_id: str | None
    step: int | None
    of: int | None
    idle_seconds: float
    last_tool: str | None
    """The last tool call and how it went, e.g. "activate_ont: ok"."""
    outbox: int
    """Notices waiting for the technician."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditEntry:
    """One tool try of an order, as recorded: arguments masked where sensitive."""

    tool: str
    args: dict[str, Any]
    ok: bool
    result: dict[str, Any]
    duration_ms: float
    at: str
    step_id: str = ""
    error_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Subscriber = Callable[[Escalation], Awaitable[None]]


@dataclass
class _Announcer:
    subscribers: list[Subscriber] = field(default_factory=list)
    announced: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Dispatch:
    """The escalations queue, the live sessions and the audit, for dispatchers."""

    def __init__(self, orchestrator: Orchestrator, workorders: WorkOrders, audit: AuditLog) -> None:
        self.orchestrator = orchestrator
        self.workorders = workorders
        self.audit_log = audit
        self._announcer = _Announcer()
        orchestrator.escalation_hooks.append(self._escalated)

    # ------------------------------------------------------------------ reading

    async def queue(self, status: str | None = None, limit: int = 500) -> list[Escalation]:
        """Escalations, newest first; only those in ``status`` when given."""
        if status is not None and status not in ESCALATION_STATUSES:
            raise DispatchError(
                f"Unknown status {status!r}; expected one of {', '.join(ESCALATION_STATUSES)}."
            )
        rows = await self._db(
            self.workorders.escalations(status=status, limit=limit, newest_first=True)
        )
        return [_escalation(row) for row in rows]

    async def get(self, escalation_id: str) -> Escalation:
        """One escalation; ``DispatchError`` if there is none by that id."""
        row = await self._db(self.workorders.get_escalation(_id(escalation_id)))
        if row is None:
            raise DispatchError(f"There is no escalation {_shown(escalation_id)}.")
        return _escalation(row)

    async def live_sessions(self, limit: int = 500) -> list[LiveSession]:
        """The conversations in the store, most recently active first."""
        now = time.time()
        try:
            sessions = await self.orchestrator.sessions.summaries(limit)
        except TechAssistError as exc:
            raise DispatchError(f"The sessions cannot be read just now: {exc}") from exc
        plans: dict[str, Plan | None] = {}
        for session in sessions:
            digest = session.plan_digest
            if digest is not None and digest not in plans:
                try:
                    plans[digest] = await self.orchestrator.sessions.plan_by_digest(digest)
                except TechAssistError:
                    plans[digest] = None
        return [_live(session, plans.get(session.plan_digest or ""), now) for session in sessions]

    async def audit(self, order_id: str) -> list[AuditEntry]:
        """An order's tool calls, oldest first: arguments masked, results, durations."""
        order_id = order_id.strip()
        if not order_id or len(order_id) > 128 or not encodable(order_id):
            raise DispatchError("Give an order id, like WO-1001.")
        rows = await self._db(self.audit_log.order_rows(order_id))
        hidden = await self._sensitive_args(order_id)
        return [
            AuditEntry(
                tool=str(row["tool"]),
                args={k: (MASK if k in hidden else v) for k, v in dict(row["args"]).items()},
                ok=bool(row["ok"]),
                result=dict(row["result"]) if isinstance(row["result"], dict) else {},
                duration_ms=float(row["duration_ms"]),
                at=str(row["at"]),
                step_id=str(row.get("step_id") or ""),
                error_kind=row.get("error_kind"),
            )
            for row in rows
        ]

    async def _sensitive_args(self, order_id: str) -> frozenset[str]:
        """Tool arguments that carry a value the order's plan marks sensitive, whatever
        they are called (the audit masks by name at record time; this is belt and braces)."""
        order = await self._db(self.workorders.get_order(order_id))
        plan = self.orchestrator.plans.for_order_type(order.order_type) if order else None
        if plan is None:
            return frozenset()
        secret = plan.sensitive_names()
        hidden = set(secret)
        for step in plan.steps:
            hidden.update(arg for arg, ref in step.inputs.items() if ref in secret)
            hidden.update(arg for arg, name in step.fallbacks.items() if name in secret)
        return frozenset(hidden)

    # ------------------------------------------------------------------ acting

    async def take(self, escalation_id: str, operator: str) -> Escalation:
        """Make an open escalation ``operator``'s; of two takers at once, one wins."""
        operator = _operator(operator)
        row = await self._db(
            self.workorders.move_escalation(
                _id(escalation_id), "taken", operator, allowed=("open",), taker_only=False
            )
        )
        if row is None:
            raise await self._refused(escalation_id, "take", operator)
        return _escalation(row)

    async def answer(self, escalation_id: str, operator: str, text: str) -> Escalation:
        """Send the taker's answer to the technician, through their bridge."""
        operator = _operator(operator)
        text = _text(text, "answer")
        current = await self._theirs(escalation_id, operator, "answer")
        data = {"escalation_id": current.id, "order_id": current.order_id, "operator": operator}
        about = current.order_id or f"your request {current.id}"
        told = f"From the dispatcher ({operator}) about {about}: {text}"
        sent = await self._notify(current, told, "answer", data, prefer_session=False)
        if sent is None:
            raise DispatchError(
                f"{current.cuid} has no conversation to send the answer to; nothing was sent."
            )
        row = await self._db(
            self.workorders.move_escalation(
                current.id, "answered", operator, allowed=_THEIRS, taker_only=True, answer=text
            )
        )
        if row is None:
            raise await self._refused(current.id, "answer", operator)
        return replace(_escalation(row), sent_to=sent.as_str())

    async def close(self, escalation_id: str, operator: str) -> Escalation:
        """Close an escalation the operator took; a parked order is let go."""
        operator = _operator(operator)
        current = await self._theirs(escalation_id, operator, "close")
        if current.order_id and current.session_key:
            await self._edit(current.session_key, lambda s: _unpark(s, current.order_id))
        return await self._finish(current, operator, "closed", "close")

    async def hand_back(self, escalation_id: str, operator: str) -> Escalation:
        """Give the order back to the technician, to resume at the step where it stood."""
        operator = _operator(operator)
        current = await self._theirs(escalation_id, operator, "hand back")
        order_id = current.order_id
        if order_id is None or current.session_key is None:
            raise DispatchError(f"{current.id} has no order to hand back.")
        order = await self._db(self.workorders.get_order(order_id))
        if order is None or order.status in ("completed", "cancelled"):
            status = order.status if order is not None else "gone"
            raise DispatchError(f"{order_id} is {status}; it cannot be handed back.")
        parked = await self._edit(current.session_key, lambda s: _hand_back(s, order_id))
        if not parked:
            raise DispatchError(
                f"{current.cuid}'s conversation no longer holds {order_id}; "
                "it cannot be resumed where it stood."
            )
        await self._db(
            self.workorders.set_order_status(
                order_id, "in_progress", f"{current.id}: handed back by {operator}"
            )
        )
        at = f" at step {current.step}" if current.step else ""
        text = (
            f"{order_id} is back with you from the dispatcher ({operator}): "
            f"you can resume it{at} where you left off, with the values you gave."
        )
        data = {"escalation_id": current.id, "order_id": order_id, "operator": operator}
        await self._notify(current, text, "handback", data, prefer_session=True)
        return await self._finish(current, operator, "handed_back", "hand back")

    async def cancel(self, escalation_id: str, operator: str, reason: str) -> Escalation:
        """Cancel the escalated order with a reason; the technician is told."""
        operator = _operator(operator)
        reason = _text(reason, "reason")
        current = await self._theirs(escalation_id, operator, "cancel")
        order_id = current.order_id
        if order_id is None:
            raise DispatchError(f"{current.id} has no order to cancel.")
        order = await self._db(self.workorders.get_order(order_id))
        if order is None or order.status == "completed":
            status = order.status if order is not None else "gone"
            raise DispatchError(f"{order_id} is already {status}; it cannot be cancelled.")
        if order.status != "cancelled":  # else an earlier try got this far: carry on
            await self._db(
                self.workorders.set_order_status(
                    order_id, "cancelled", f"{current.id}: cancelled by {operator}: {reason}"
                )
            )
        if current.session_key:
            await self._edit(current.session_key, lambda s: _unpark(s, order_id))
        text = f"{order_id} was cancelled by the dispatcher ({operator}): {reason}"
        data = {"escalation_id": current.id, "order_id": order_id, "operator": operator}
        await self._notify(current, text, "cancelled", data, prefer_session=True)
        return await self._finish(current, operator, "cancelled", "cancel")

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback`` with each new escalation (the Slack dispatch channel posts it).

        Callbacks run in the background, after the technician's turn: a slow or
        failing one delays and breaks nothing.
        """
        self._announcer.subscribers.append(callback)

    # ------------------------------------------------------------------ plumbing

    async def _escalated(self, escalation_id: str) -> None:
        """The core's hook: an escalation was just recorded."""
        announcer = self._announcer
        if not announcer.subscribers or escalation_id in announcer.announced:
            return
        announcer.announced.add(escalation_id)
        if len(announcer.announced) > 10_000:
            announcer.announced.clear()
        task = asyncio.create_task(self._announce(escalation_id))
        announcer.tasks.add(task)
        task.add_done_callback(announcer.tasks.discard)

    async def _announce(self, escalation_id: str) -> None:
        try:
            escalation = await self.get(escalation_id)
        except DispatchError as exc:
            log.warning("cannot announce escalation %s: %s", escalation_id, exc)
            return
        for callback in list(self._announcer.subscribers):
            try:
                await callback(escalation)
            except Exception:
                log.exception("an escalation subscriber failed on %s", escalation_id)

    async def _theirs(self, escalation_id: str, operator: str, action: str) -> Escalation:
        """The escalation, if ``operator`` took it and it is still theirs to act on."""
        current = await self.get(escalation_id)
        if current.status not in _THEIRS or (current.operator or "").casefold() != (
            operator.casefold()
        ):
            raise self._why(current, action, operator)
        return current

    async def _finish(
        self, current: Escalation, operator: str, outcome: str, action: str
    ) -> Escalation:
        row = await self._db(
            self.workorders.move_escalation(
                current.id, "closed", operator, allowed=_THEIRS, taker_only=True, outcome=outcome
            )
        )
        if row is None:
            raise await self._refused(current.id, action, operator)
        return _escalation(row)

    async def _refused(self, escalation_id: str, action: str, operator: str) -> DispatchError:
        return self._why(await self.get(escalation_id), action, operator)

    @staticmethod
    def _why(current: Escalation, action: str, operator: str) -> DispatchError:
        who = current.operator or "someone"
        if current.status == "closed":
            how = (current.outcome or "closed").replace("_", " ")
            return DispatchError(f"{current.id} is already closed ({how}); you cannot {action} it.")
        if current.status == "open":
            return DispatchError(f"{current.id} is not taken yet; take it before you {action} it.")
        if action == "take":
            return DispatchError(f"{current.id} was already taken by {who}.")
        if who.casefold() != operator.casefold():
            return DispatchError(f"{current.id} was taken by {who}; only they can {action} it.")
        return DispatchError(f"{current.id} is {current.status}; you cannot {action} it now.")

    async def _notify(
        self,
        current: Escalation,
        text: str,
        kind: NoticeKind,
        data: dict[str, Any],
        *,
        prefer_session: bool,
    ) -> SessionKey | None:
        """Tell the technician: in the conversation the escalation came from, or (for an
        answer) in their most recently active one."""
        target: SessionKey | str = current.cuid
        if prefer_session and current.session_key:
            try:
                target = SessionKey.from_str(current.session_key)
            except ValueError:
                target = current.cuid
        try:
            return await self.orchestrator.notify(target, text, kind=kind, data=data)
        except TechAssistError as exc:
            raise DispatchError(
                f"The message could not reach {current.cuid} just now ({exc}); try again."
            ) from exc

    async def _edit(self, session_key: str, change: Callable[[Session], bool]) -> bool:
        """Apply ``change`` to a stored session under its lock and save it if it says so;
        what it said (False when there is no such session)."""
        try:
            key = SessionKey.from_str(session_key)
        except ValueError:
            return False
        manager = self.orchestrator.sessions
        for _ in range(3):
            try:
                async with manager.lock(key) as lease:
                    session = await manager.get_session_data(key, lease)
                    if session is None or not change(session):
                        return False
                    await manager.update_session_data(session, lease=lease)
                    return True
            except StaleVersionError:
                continue
            except TechAssistError as exc:
                raise DispatchError(f"The conversation cannot be changed just now: {exc}") from exc
        raise DispatchError("The conversation kept changing; try again.")

    @staticmethod
    async def _db(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except TechAssistError as exc:
            raise DispatchError(f"The work-order database failed: {exc}") from exc


# ---------------------------------------------------------------------- session edits


def _hand_back(session: Session, order_id: str) -> bool:
    key = _parked_key(session, order_id)
    if key is None:
        return False
    if key not in session.handed_back:
        session.handed_back.append(key)
    return True


def _unpark(session: Session, order_id: str | None) -> bool:
    key = _parked_key(session, order_id) if order_id else None
    if key is None:
        return False
    del session.parked[key]
    session.handed_back = [o for o in session.handed_back if o != key]
    session.orders = [o for o in session.orders if o.order_id.casefold() != key.casefold()]
    return True


def _parked_key(session: Session, order_id: str | None) -> str | None:
    if order_id is None:
        return None
    return next((k for k in session.parked if k.casefold() == order_id.casefold()), None)


# ---------------------------------------------------------------------- conversions


def _id(escalation_id: str) -> str:
    text = escalation_id.strip()
    if not text or len(text) > 32 or not encodable(text):
        raise DispatchError("Give an escalation id, like ESC-0001.")
    return text.upper()


def _shown(escalation_id: str) -> str:
    return _id(escalation_id)


def _operator(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or not encodable(name):
        raise DispatchError("An operator needs a name of 1 to 64 characters.")
    return name


def _text(text: str, what: str) -> str:
    text = text.strip()
    if not text:
        raise DispatchError(f"The {what} is empty.")
    if len(text) > MAX_TEXT:
        raise DispatchError(f"The {what} is {len(text)} characters; the limit is {MAX_TEXT}.")
    if not encodable(text):
        raise DispatchError(f"The {what} has characters that cannot be read; type it again.")
    return text


def _epoch(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, datetime):
        return as_utc(value).timestamp()
    return as_utc(datetime.fromisoformat(str(value))).timestamp()


def _escalation(row: dict[str, Any]) -> Escalation:
    created = _epoch(row.get("created_at"))
    params = row.get("params")
    return Escalation(
        id=str(row["escalation_id"]),
        status=str(row.get("status") or "open"),
        cuid=str(row["cuid"]),
        order_id=row.get("order_id"),
        kind=str(row["kind"]),
        words=str(row.get("words") or row.get("reason") or ""),
        step=row.get("step_no"),
        of=row.get("step_of"),
        params=dict(params) if isinstance(params, dict) else {},
        operator=row.get("operator"),
        answer=row.get("answer"),
        session_key=row.get("session_key"),
        created_at=created,
        updated_at=_epoch(row.get("updated_at")) or created,
        outcome=row.get("outcome"),
        step_id=row.get("step"),
        reason=str(row.get("reason") or ""),
    )


def _live(session: Session, plan: Plan | None, now: float) -> LiveSession:
    step: int | None = None
    of: int | None = None
    if session.order is not None and plan is not None:
        of = len(plan.steps)
        step = min(session.step_index + 1, of)
    last_at = session.last_turn_at
    return LiveSession(
        key=session.key.as_str(),
        cuid=session.cuid,
        name=session.technician_name,
        bridge=session.key.bridge,
        phase=session.phase.value,
        order_id=session.order.order_id if session.order is not None else None,
        step=step,
        of=of,
        idle_seconds=round(max(0.0, now - last_at), 1) if last_at is not None else 0.0,
        last_tool=session.last_tool,
        outbox=len(session.outbox),
    )


__all__ = [
    "ESCALATION_STATUSES",
    "OUTCOMES",
    "AuditEntry",
    "Dispatch",
    "DispatchError",
    "Escalation",
    "LiveSession",
]
