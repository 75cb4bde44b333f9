"""The conversation state machine: one turn in, its replies out.

All conversation state lives in the ``Session``; the ``Orchestrator`` holds
only its collaborators. Any process that reaches the same store can take the
next turn, which is how a restart or a second instance carries on.

Each turn follows one path: lock the key, load the session, answer a repeated
message id from the stored replies, run the state machine, save with the
version that was loaded, return the replies. Handlers change the session and
return what they have to *say*; the closing question is always rebuilt from
the session by ``_question``, so a resumed session can ask it again verbatim.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from orchestrator_core.errors import LockError, StaleVersionError, StoreError, Unavailable
from orchestrator_core.inner_agent import CallContext, InnerAgent, ToolResult
from orchestrator_core.notices import LocalNotifier, Notice, NoticeKind, Notifier, reminder_text
from orchestrator_core.observe import NO_OBSERVER, Observer
from orchestrator_core.phases import (
    PHASES,
    Next,
    execute_plan_steps,
    post_task_interaction,
    run_task,
)
from orchestrator_core.phases.commands import (
    COMMANDS,
    IN_PLAN,
    current_task,
    escalation_words,
    run_command,
    where_you_stand,
)
from orchestrator_core.phases.handback import offered, take_offer
from orchestrator_core.phases.orders import identify
from orchestrator_core.plans import Plan, PlanLibrary
from orchestrator_core.session import Delivered, Phase, Session
from orchestrator_core.session_manager import SessionManager
from orchestrator_core.turns import (
    KEY_PREFIX,
    MAX_KEY_PART,
    IncomingTurn,
    Reply,
    ReplyKind,
    SessionKey,
    TurnKind,
    encodable,
    readable,
)

log = logging.getLogger("techassist.orchestrator")

#: Turns in a row that may end on the same question before a way out is added to it.
MAX_REPEATS = 3
#: Times a turn runs again after losing a race to another writer of its session.
MAX_RACES = 3
#: Messages longer than this are refused before any parsing.
MAX_TEXT = 8192
#: Seconds a technician idle mid-order waits for a reminder, unless told otherwise.
REMINDER_AFTER = 1800.0
#: Notices a session keeps for a technician who does not come back; the oldest go first.
MAX_OUTBOX = 50
#: Notices pushed to a session that it keeps, so a page that lost one gets it again.
MAX_DELIVERED = 20

UNREADABLE = (
    "That message has characters that cannot be read (part of an emoji or symbol was lost "
    "on the way), so nothing was taken from it. Please type it again."
)
SORRY = (
    "Sorry, something went wrong on our side. Nothing you entered was lost: please send that again."
)
#: The answer to a turn when the session store, its lock or the work-order database cannot
#: be reached: nothing of the turn was kept, and the same message sent again once it is
#: back goes on from there (tools that already ran are answered from the audit).
UNAVAILABLE = (
    "The service is briefly unavailable, so that message was not taken. Nothing you entered "
    "before was lost: please send it again in a moment."
)


#: Awaited with a short line before a plan step's tool runs (see ``handle_turn``).
Progress = Callable[[str], Awaitable[None]]
# The progress callback of the turn being handled. A context variable, because
# one Orchestrator serves many concurrent turns and the callback is per turn.
_progress: ContextVar[Progress | None] = ContextVar("techassist_progress", default=None)


class _Raced(Exception):
    """A turn's save lost to another writer; its cause says how."""


@dataclass(frozen=True)
class TurnOutcome:
    """A turn's replies, and whether they are the stored answer to a repeated message."""

    replies: list[Reply]
    replayed: bool = False
    where: dict[str, Any] | None = None
    """Where the conversation stands after the turn (see ``where``); None when unknown."""


class Orchestrator:
    """Runs technician conversations over a session store, plans and an inner agent."""

    def __init__(
        self,
        sessions: SessionManager,
        plans: PlanLibrary,
        agent: InnerAgent,
        *,
        observer: Observer = NO_OBSERVER,
        notifier: Notifier | None = None,
        reminder_after: float = REMINDER_AFTER,
    ) -> None:
        self.sessions = sessions
        self.plans = plans
        self.agent = agent
        self.observer = observer
        self.notifier: Notifier = notifier if notifier is not None else LocalNotifier()
        """Told of every session that gets a notice (``notify``, ``fire_reminders``)."""
        self.reminder_after = reminder_after
        """Seconds after a technician's turn mid-order before a reminder is due."""
        self.escalation_hooks: list[Callable[[str], Awaitable[None]]] = []
        """Called with each new escalation's id (``Dispatch`` listens here); must not block."""

    # ------------------------------------------------------------------ the turn

    async def handle(self, turn: IncomingTurn, *, progress: Progress | None = None) -> list[Reply]:
        """Process one turn and return its replies; never raises into a bridge."""
        return (await self.handle_turn(turn, progress=progress)).replies

    async def handle_turn(
        self, turn: IncomingTurn, *, progress: Progress | None = None
    ) -> TurnOutcome:
        """Process one turn; the outcome also says whether it was a repeat already answered.

        ``progress`` is awaited with a short line ("Running the speed test") before
        each plan step's tool runs, so a bridge can show that a slow step is under
        way. It must not raise.

        A turn that loses a race to another writer of its session (its save is
        stale, or its lease was taken over) runs again from the stored state, up
        to ``MAX_RACES`` times; if another instance already answered the same
        message id, its stored replies are the answer.
        """
        began = time.perf_counter()
        token = _progress.set(progress)
        try:
            outcome = await self._attempts(turn, began)
        finally:
            _progress.reset(token)
        key = turn.key
        self.observer.turn(key.bridge, key.as_str(), time.perf_counter() - began)
        return outcome

    async def _attempts(self, turn: IncomingTurn, began: float) -> TurnOutcome:
        for attempt in range(1 + MAX_RACES):
            try:
                return await self._turn(turn, began)
            except _Raced as race:
                # Another writer (an instance whose lease expired, or that took ours)
                # saved first: run the turn again on what it stored.
                if isinstance(race.__cause__, LockError):
                    self.observer.lease_lost()
                log.info(
                    "turn for %s raced another writer (%s); running it again",
                    turn.key.as_str(),
                    race.__cause__,
                )
                if attempt == MAX_RACES:
                    log.error("turn for %s lost %d races in a row", turn.key.as_str(), attempt + 1)
            except Unavailable as exc:
                # A backend is down or restarting: say so, without a traceback.
                log.warning("turn for %s not taken: %s", turn.key.as_str(), exc)
                return TurnOutcome([Reply.prompt(UNAVAILABLE)])
            except LockError:
                log.exception("cannot lock session %s", turn.key.as_str())
                break
        return TurnOutcome([Reply.prompt(SORRY)])

    async def _turn(self, turn: IncomingTurn, began: float) -> TurnOutcome:
        """One attempt at a turn; ``_Raced`` if another writer saved the session meanwhile."""
        async with self.sessions.lock(turn.key, message_id=turn.message_id) as lease:
            self.observer.lock_wait(time.perf_counter() - began)
            try:
                session = await self.sessions.get_session_data(turn.key, lease)
                if session is None:
                    session = self.sessions.create_session(turn.key)
                elif turn.message_id is not None:
                    already = await self.sessions.replies_for(turn.key, turn.message_id, lease)
                    if already is not None:
                        self.observer.dedupe_hit()
                        return TurnOutcome(already, replayed=True, where=where(session))
            except Unavailable:
                raise
            except StoreError:
                log.exception("cannot load session %s", turn.key.as_str())
                return TurnOutcome([Reply.prompt(SORRY)])
            try:
                notices = _drain(session)
                replies = notices + await self._dispatch(session, turn)
            except Unavailable:
                raise  # nothing saved; the technician is told to send it again
            except Exception:
                # The session is not saved, so the stored state is as before the turn.
                log.exception("turn failed for %s in phase %s", turn.key.as_str(), session.phase)
                return TurnOutcome([Reply.prompt(SORRY)])
            log.debug("turn %s: %s -> %s", turn.key.as_str(), turn.kind.value, session.phase.value)
            if session.cuid is None and session.version == 0:
                # Nobody identified and nothing was stored before: whatever a stranger
                # sends costs no byte on disk.
                return TurnOutcome(replies, where=where(session))
            answered = (turn.message_id, replies) if turn.message_id is not None else None
            self._turn_taken(session)
            try:
                lease.check()
                await self.sessions.update_session_data(session, answered=answered, lease=lease)
            except Unavailable:
                raise
            except (LockError, StaleVersionError) as exc:
                raise _Raced from exc
            except StoreError:
                log.exception("cannot save session %s", turn.key.as_str())
                return TurnOutcome([Reply.prompt(SORRY)])
            return TurnOutcome(replies, where=where(session))

    async def technician_for(self, *, slack_user_id: str = "", email: str = "") -> str | None:
        """The CUID of the technician a chat account belongs to, or ``None`` if unmapped."""
        result = await self.agent.execute_task(
            "find_technician_by_account",
            {"slack_user_id": slack_user_id, "email": email},
            CallContext(
                session_id="identity", order_id=None, step_id="identity", attempt=0, audit=False
            ),
        )
        return str(result.outputs["cuid"]) if result.ok else None

    async def identified_as(self, key: SessionKey) -> str | None:
        """The CUID a conversation has identified as, or ``None`` (a bridge's sign-in check)."""
        try:
            session = await self.sessions.get_session_data(key)
        except Unavailable as exc:
            log.warning("cannot load session %s: %s", key.as_str(), exc)
            return None
        except StoreError:
            log.exception("cannot load session %s", key.as_str())
            return None
        return session.cuid if session is not None else None

    async def refuse_key(self, bridge: str, cuid: str) -> list[Reply]:
        """The replies to a CUID too long to make a session key of (``KeyTooLong``).

        They are those of any identification that fails, so a bridge answers such
        a CUID as it answers an unknown one. Nothing is saved.
        """
        session = Session(key=SessionKey(bridge, "", "", "unidentified"))
        return self._close(session, await identify(self, session, cuid[:MAX_KEY_PART]))

    async def undelivered(self, key: SessionKey, replies: list[Reply]) -> None:
        """Keep replies a bridge could not deliver; the technician sees them on return.

        Called by a bridge when the connection dropped before a turn's replies
        went out (the turn itself was already saved).
        """
        try:
            async with self.sessions.lock(key) as lease:
                session = await self.sessions.get_session_data(key, lease)
                if session is not None:
                    session.keep_undelivered(replies)
                    await self.sessions.update_session_data(session, lease=lease)
        except Unavailable as exc:
            log.warning("cannot keep undelivered replies for %s: %s", key.as_str(), exc)
        except StoreError:
            log.exception("cannot keep undelivered replies for %s", key.as_str())
        except LockError:
            log.exception("cannot lock session %s to keep undelivered replies", key.as_str())

    def _turn_taken(self, session: Session) -> None:
        """The technician spoke: a reminder is due ``reminder_after`` from now, mid-order."""
        now = time.time()
        session.last_turn_at = now
        mid_order = session.order is not None and session.phase is not Phase.ENDED
        session.remind_at = now + self.reminder_after if mid_order else None

    # ------------------------------------------------------------------ messages nobody asked for

    async def notify(
        self,
        target: SessionKey | str,
        text: str,
        *,
        kind: NoticeKind = "info",
        data: dict[str, Any] | None = None,
    ) -> SessionKey | None:
        """Keep a notice in a session's outbox and tell the bridges; the key it went to.

        ``target``: a session key (or its ``as_str`` form), or a CUID, meaning that
        technician's most recently active session. ``None`` when there is no such
        session: nothing is kept. The notice is saved under the session's lock with
        the version check (once more if another writer saved meanwhile), then the
        notifier is told; a failing notifier is only logged, as the notice waits
        in the session for the next connection or turn. ``StoreError`` (or
        ``LockError``) if it cannot be kept. ``ValueError``, before anything is
        looked up, for an empty text, one over ``MAX_TEXT`` characters, or ``data``
        that cannot be stored as JSON.
        """
        text = readable(text).strip()
        if not text:
            raise ValueError("a notice needs some text")
        if len(text) > MAX_TEXT:
            raise ValueError(f"a notice is at most {MAX_TEXT} characters; this is {len(text)}")
        notice = Notice(kind=kind, text=text, data=dict(data or {}))
        try:
            notice.model_dump_json()
        except (TypeError, ValueError) as exc:  # pydantic's serialization error is a ValueError
            raise ValueError(f"a notice's data must be JSON: {exc}") from None
        key = await self._target(target)
        if key is None:
            return None
        where = key.as_str()

        def add(session: Session) -> bool:
            session.outbox.append(notice)
            if len(session.outbox) > MAX_OUTBOX:
                log.warning(
                    "session %s holds over %d notices; the oldest is dropped", where, MAX_OUTBOX
                )
                del session.outbox[: len(session.outbox) - MAX_OUTBOX]
            return True

        if not await self._change(key, add):
            return None
        await self._publish(key)
        return key

    async def take_notices(self, key: SessionKey) -> list[Notice]:
        """Remove and return a session's outbox, so each notice is delivered once.

        Push bridges call it when the notifier names ``key`` and when a
        connection opens. An empty list if there is nothing, or if the store
        cannot be reached (logged): the notices then wait for the next try.
        """
        taken: list[Notice] = []

        def take(session: Session) -> bool:
            if not session.outbox:
                return False
            taken[:] = _take_outbox(session)
            return True

        try:
            await self._change(key, take)
        except (StoreError, LockError) as exc:
            log.warning("cannot take the notices of %s: %s", key.as_str(), exc)
            return []
        return taken

    async def resume_notices(
        self, key: SessionKey, seen: str | None, *, take: bool = True
    ) -> tuple[list[Notice], list[Notice]]:
        """What a page that (re)connects must be sent: ``(again, taken)``.

        ``again``: notices already pushed that the page may have lost with its
        connection, oldest first (see ``delivered_after``; ``seen`` is the last
        id the page saw). ``taken``: the outbox, removed as ``take_notices`` does,
        in the same save (only when ``take``). Both empty if the store cannot be
        reached (logged): the outbox then waits for the next try.
        """
        again: list[Notice] = []
        taken: list[Notice] = []

        def resume(session: Session) -> bool:
            again[:] = delivered_after(session, seen)
            if not take or not session.outbox:
                return False
            taken[:] = _take_outbox(session)
            return True

        try:
            await self._change(key, resume)
        except (StoreError, LockError) as exc:
            log.warning("cannot take the notices of %s: %s", key.as_str(), exc)
            return [], []
        return again, taken

    async def keep_notices(self, key: SessionKey, notices: list[Notice]) -> None:
        """Put back notices a bridge took but could not deliver (the connection dropped):
        they come first again, at the next connection or turn. Nothing is announced.

        A failing store is logged: those notices are then lost, as a reply the
        technician's connection dropped would be.
        """
        if not notices:
            return
        known = {n.id for n in notices}

        def put_back(session: Session) -> bool:
            session.outbox = notices + [n for n in session.outbox if n.id not in known]
            session.delivered = [d for d in session.delivered if d.notice.id not in known]
            return True

        try:
            await self._change(key, put_back)
        except (StoreError, LockError) as exc:
            log.warning("cannot keep the undelivered notices of %s: %s", key.as_str(), exc)

    async def fire_reminders(self, now: float | None = None) -> int:
        """Put a reminder in the outbox of each session due one at ``now``; how many fired.

        A session is reminded once per idle period: the reminder clears its
        ``remind_at`` until the technician's next turn. Checked again under the
        session's lock, so instances sweeping the same store remind once.
        """
        now = time.time() if now is None else now
        try:
            keys = await self.sessions.store.due(now)
        except StoreError as exc:
            log.warning("cannot list the sessions due a reminder: %s", exc)
            return 0
        fired = 0
        reminded: list[bool] = []
        for text in keys:
            try:
                key = SessionKey.from_str(text)
            except ValueError:
                log.warning("a session due a reminder has an unreadable key; skipped")
                continue

            def remind(session: Session) -> bool:
                reminded[:] = [False]
                if session.remind_at is None or session.remind_at > now:
                    return False
                session.remind_at = None
                if session.order is None or session.phase is Phase.ENDED:
                    return True  # no longer mid-order: nothing to remind of, only to clear
                reminded[:] = [True]
                order_id = session.order.order_id
                session.outbox.append(
                    Notice(
                        kind="reminder", text=reminder_text(order_id), data={"order_id": order_id}
                    )
                )
                return True

            try:
                if not await self._change(key, remind) or not reminded[0]:
                    continue
            except (StoreError, LockError) as exc:
                log.warning("cannot remind %s: %s", key.as_str(), exc)
                continue
            fired += 1
            await self._publish(key)
        return fired

    async def _target(self, target: SessionKey | str) -> SessionKey | None:
        if isinstance(target, SessionKey):
            return target
        if target.startswith(KEY_PREFIX):
            try:
                return SessionKey.from_str(target)
            except ValueError:
                return None
        # A CUID: of the technician's sessions (the store's index), the one they last spoke in.
        best: tuple[float, str] | None = None
        for summary in await self.sessions.store.sessions_of(target):
            try:
                stored = json.loads(summary.data)
            except ValueError:
                continue
            if not isinstance(stored, dict) or stored.get("cuid") != target:
                continue
            spoke = stored.get("last_turn_at")
            when = float(spoke) if isinstance(spoke, int | float) else summary.saved_at
            if best is None or when > best[0]:
                best = (when, summary.key)
        if best is None:
            return None
        try:
            return SessionKey.from_str(best[1])
        except ValueError:
            return None

    async def _change(self, key: SessionKey, change: Callable[[Session], bool]) -> bool:
        """Load ``key`` under its lock, apply ``change`` and save if it says so.

        False if there is no session or ``change`` changed nothing. A save that
        lost to another writer is tried again on what that writer stored, up to
        ``MAX_RACES`` times.
        """
        for attempt in range(1 + MAX_RACES):
            held = False
            try:
                async with self.sessions.lock(key) as lease:
                    held = True
                    session = await self.sessions.get_session_data(key, lease)
                    if session is None or not change(session):
                        return False
                    lease.check()
                    await self.sessions.update_session_data(session, lease=lease)
                    return True
            except (StaleVersionError, LockError):
                # Not held at all (another turn kept it past the lock's wait): no retry.
                if attempt == MAX_RACES or not held:
                    raise
                log.info("a notice for %s raced another writer; trying again", key.as_str())
        return False  # not reached: the last attempt returns or raises

    async def _publish(self, key: SessionKey) -> None:
        try:
            await self.notifier.publish(key.as_str())
        except Exception as exc:  # the notice is kept: it waits for the next connection or turn
            log.warning("cannot announce the notices of %s: %s", key.as_str(), exc)

    async def _dispatch(self, session: Session, turn: IncomingTurn) -> list[Reply]:
        text = turn.text.strip()
        if len(text) > MAX_TEXT:
            return [
                Reply.display(
                    f"That message is too long ({len(text)} characters; the limit is {MAX_TEXT})."
                ),
                self._question(session),
            ]
        if not encodable(text):
            return [Reply.display(UNREADABLE), self._question(session)]
        # Replies a bridge could not deliver come first, whatever the turn.
        said = [r for r in session.take_undelivered() if r.kind is ReplyKind.DISPLAY]
        fresh = session.cuid is None or session.phase in (Phase.IDENTIFY, Phase.ENDED)
        if turn.cuid and session.cuid is None:
            # The bridge already knows who this is (websocket CUID frame, mapped Slack user).
            session.paused = False
            return said + self._close(session, await identify(self, session, turn.cuid))
        if turn.kind is TurnKind.START or session.paused:
            session.paused = False
            if turn.cuid and fresh:
                return said + self._close(session, await identify(self, session, turn.cuid))
            if not fresh:
                said.append(where_you_stand(session))
            if turn.kind is TurnKind.START or not text:
                # An order a dispatcher handed back is offered as soon as the technician is back.
                session.phase = offered(session, Next(session.phase)).phase
                return [*said, self._question(session)]
        return [*said, *await self._answer(session, text)]

    async def _answer(self, session: Session, text: str) -> list[Reply]:
        take_offer(session, text)  # a yes or no to a hand-back notice answers its offer
        asked = self._question(session)
        command = COMMANDS.match(text)
        words = escalation_words(session, text)
        if words is not None and "escalate" not in (c.lower() for c in asked.choices):
            # "escalate the cabinet is locked": the words go to the dispatcher.
            outcome = await run_command(self, session, "escalate", asked, words=words)
            return self._close(session, outcome, False)
        if command is not None and command not in (c.lower() for c in asked.choices):
            # A command answers nothing, so it does not count towards a repeated question.
            return self._close(session, await run_command(self, session, command, asked), False)
        return self._close(session, await PHASES[session.phase].handle(self, session, text))

    def _close(self, session: Session, outcome: Next, answered: bool = True) -> list[Reply]:
        """Enter the next phase and end the turn's replies with its question.

        The third answer in a row that ends on the same question adds a way out to it.
        """
        outcome = offered(session, outcome)
        session.phase = outcome.phase
        if session.phase is Phase.ENDED or session.paused:
            session.last_question, session.repeats = None, 0
            return outcome.said
        question = self._question(session)
        if answered:
            same = question.text == session.last_question
            session.last_question = question.text
            session.repeats = session.repeats + 1 if same else 1
        if session.repeats >= MAX_REPEATS:
            question = _with_way_out(session, question)
        return [*outcome.said, question]

    def _question(self, session: Session) -> Reply:
        question = PHASES[session.phase].question(session)
        plan = session.plan
        if question.needs and plan is not None and question.needs in plan.sensitive_names():
            return question.model_copy(update={"sensitive": True})  # a bridge hides the typing
        return question

    # ------------------------------------------------------------------ the seed's phases

    async def run_task(self, session: Session) -> list[Reply]:
        """Fetch and prioritise the technician's orders and propose the most urgent one."""
        return self._close(session, await run_task(self, session))

    async def execute_plan_steps(self, session: Session) -> list[Reply]:
        """Run the current order's steps until a value is needed, a tool fails, or the end."""
        return self._close(session, await execute_plan_steps(self, session))

    async def post_task_interaction(self, session: Session, text: str) -> list[Reply]:
        """After an order: the next order, help from a human, or the end."""
        return self._close(session, await post_task_interaction(self, session, text))

    # ------------------------------------------------------------------ services for the phases

    async def start_plan(self, session: Session, plan: Plan) -> None:
        await self.sessions.start_plan(session, plan)

    async def resume_plan(
        self, session: Session, digest: str, fallback: Plan | None
    ) -> Plan | None:
        return await self.sessions.resume_plan(session, digest, fallback)

    async def escalated(self, escalation_id: str) -> None:
        for hook in list(self.escalation_hooks):
            try:
                await hook(escalation_id)
            except Exception:
                log.exception("an escalation hook failed on %s", escalation_id)

    async def progress(self, text: str) -> None:
        report = _progress.get()
        if report is not None:
            await report(text)

    async def tool(
        self,
        session: Session,
        tool: str,
        args: dict[str, Any],
        *,
        step_id: str,
        order_id: str | None = None,
        sensitive: frozenset[str] = frozenset(),
    ) -> ToolResult:
        """Run a tool through the inner agent, as the session's next numbered call."""
        session.calls += 1
        result = await self.agent.execute_task(
            tool,
            args,
            CallContext(
                session_id=session.key.as_str(),
                order_id=order_id,
                step_id=step_id,
                attempt=session.calls,
                sensitive=sensitive,
                # Lookups before anyone identified leave no audit row.
                audit=session.cuid is not None,
            ),
        )
        # For the dispatcher's list of sessions: the kind of failure, never its message.
        session.last_tool = f"{tool}: ok" if result.ok else f"{tool}: {result.error_kind}"
        return result


def where(session: Session) -> dict[str, Any]:
    """Where a conversation stands, for a bridge's header: phase, order and step k of n.

    The order and ``step``/``of`` are None unless a plan's step is under way (a
    finished order is no longer shown); nothing here is sensitive.
    """
    phase = session.phase
    if phase in (Phase.HELP_TEXT, Phase.CANCEL_REASON) and session.return_phase is not None:
        phase = session.return_phase  # a detour from where the order stands
    working = phase in IN_PLAN
    order = session.order if working else None
    plan = session.plan
    step: int | None = None
    of: int | None = None
    task: str | None = None
    if order is not None and plan is not None and plan.steps:
        of = len(plan.steps)
        step = min(session.step_index + 1, of)
        task = current_task(session)
    return {
        "phase": session.phase.value,
        "cuid": session.cuid,
        "name": session.technician_name,
        "order_id": order.order_id if order is not None else None,
        "order_type": order.order_type if order is not None else None,
        "step": step,
        "of": of,
        "task": task,
        # The names (never the values) of the plan's sensitive parameters: a bridge masks
        # them in what it echoes of the technician's own messages.
        "sensitive": sorted(plan.sensitive_names()) if order is not None and plan else [],
    }


def _drain(session: Session) -> list[Reply]:
    """The outbox as the first replies of a technician's turn; reminders are dropped, as the
    technician is back."""
    if not session.outbox:
        return []
    notices, session.outbox = session.outbox, []
    return [n.as_reply() for n in notices if n.kind != "reminder"]


def _take_outbox(session: Session) -> list[Notice]:
    """Empty the outbox for a push; its notices join the last ``MAX_DELIVERED`` delivered."""
    taken, session.outbox = session.outbox, []
    now = time.time()
    known = {n.id for n in taken}
    kept = [d for d in session.delivered if d.notice.id not in known]
    kept += [Delivered(notice=n, at=now) for n in taken]
    session.delivered = kept[-MAX_DELIVERED:]
    return taken


def delivered_after(session: Session, seen: str | None) -> list[Notice]:
    """The pushed notices a page that last saw ``seen`` may not have, oldest first.

    ``seen`` one of the last ``MAX_DELIVERED`` pushed: those pushed after it. Anything
    else (a reply's id, an id too old or of another session, none): those pushed since
    the technician last spoke, as a page they spoke from saw everything before. A
    reminder pushed before they last spoke is never sent again: they are back.
    """
    spoke = session.last_turn_at or 0.0
    ids = [d.notice.id for d in session.delivered]
    if seen is not None and seen in ids:
        later = session.delivered[ids.index(seen) + 1 :]
    else:
        later = [d for d in session.delivered if d.at > spoke]
    return [d.notice for d in later if d.notice.kind != "reminder" or d.at > spoke]


def _with_way_out(session: Session, question: Reply) -> Reply:
    """The question once more, with a way out it did not offer."""
    if session.order is not None and "escalate" not in question.choices:
        hint = "If you're stuck, say escalate to hand this order to a human."
        extra = ["escalate"] if question.choices else []
    elif session.order is None:
        hint = "If you're stuck, say quit to leave; your progress is kept."
        extra = ["quit"] if question.choices else []
    else:
        return question
    return question.model_copy(
        update={"text": f"{question.text}\n{hint}", "choices": [*question.choices, *extra]}
    )
