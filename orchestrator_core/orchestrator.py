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

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from orchestrator_core import questions, texts
from orchestrator_core.conditions import evaluate
from orchestrator_core.errors import StoreError
from orchestrator_core.inner_agent import CallContext, InnerAgent, ToolResult
from orchestrator_core.params import Invalid, parse_values, validate_value
from orchestrator_core.plans import Parameter, Plan, PlanLibrary, Step, step_inputs
from orchestrator_core.session import Phase, Session
from orchestrator_core.session_manager import SessionManager
from orchestrator_core.turns import IncomingTurn, Reply, ReplyKind, SessionKey, TurnKind

log = logging.getLogger("techassist.orchestrator")

#: Bad values in a row before escalation is offered.
MAX_BAD_ATTEMPTS = 3
#: Messages longer than this are refused before any parsing.
MAX_TEXT = 8192

SORRY = (
    "Sorry, something went wrong on our side. Nothing you entered was lost: please send that again."
)


#: Awaited with a short line before a plan step's tool runs (see ``handle_turn``).
Progress = Callable[[str], Awaitable[None]]
# The progress callback of the turn being handled. A context variable, because
# one Orchestrator serves many concurrent turns and the callback is per turn.
_progress: ContextVar[Progress | None] = ContextVar("techassist_progress", default=None)


@dataclass(frozen=True)
class TurnOutcome:
    """A turn's replies, and whether they are the stored answer to a repeated message."""

    replies: list[Reply]
    replayed: bool = False


class Orchestrator:
    """Runs technician conversations over a session store, plans and an inner agent."""

    def __init__(self, sessions: SessionManager, plans: PlanLibrary, agent: InnerAgent) -> None:
        self.sessions = sessions
        self.plans = plans
        self.agent = agent

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
        """
        async with self.sessions.lock(turn.key):
            try:
                session = await self.sessions.get_session_data(turn.key)
                if session is None:
                    session = self.sessions.create_session(turn.key)
                elif turn.message_id is not None:
                    already = await self.sessions.replies_for(turn.key, turn.message_id)
                    if already is not None:
                        return TurnOutcome(already, replayed=True)
            except StoreError:
                log.exception("cannot load session %s", turn.key.as_str())
                return TurnOutcome([Reply.prompt(SORRY)])
            token = _progress.set(progress)
            try:
                replies = await self._dispatch(session, turn)
            except Exception:
                # The session is not saved, so the stored state is as before the turn.
                log.exception("turn failed for %s in phase %s", turn.key.as_str(), session.phase)
                return TurnOutcome([Reply.prompt(SORRY)])
            finally:
                _progress.reset(token)
            log.debug("turn %s: %s -> %s", turn.key.as_str(), turn.kind.value, session.phase.value)
            answered = (turn.message_id, replies) if turn.message_id is not None else None
            try:
                await self.sessions.update_session_data(session, answered=answered)
            except StoreError:
                log.exception("cannot save session %s", turn.key.as_str())
                return TurnOutcome([Reply.prompt(SORRY)])
            return TurnOutcome(replies)

    async def technician_for(self, *, slack_user_id: str = "", email: str = "") -> str | None:
        """The CUID of the technician a chat account belongs to, or ``None`` if unmapped."""
        result = await self.agent.execute_task(
            "find_technician_by_account",
            {"slack_user_id": slack_user_id, "email": email},
            CallContext(session_id="identity", order_id=None, step_id="identity", attempt=0),
        )
        return str(result.outputs["cuid"]) if result.ok else None

    async def undelivered(self, key: SessionKey, replies: list[Reply]) -> None:
        """Keep replies a bridge could not deliver; the technician sees them on return.

        Called by a bridge when the connection dropped before a turn's replies
        went out (the turn itself was already saved).
        """
        async with self.sessions.lock(key):
            try:
                session = await self.sessions.get_session_data(key)
                if session is not None:
                    session.keep_undelivered(replies)
                    await self.sessions.update_session_data(session)
            except StoreError:
                log.exception("cannot keep undelivered replies for %s", key.as_str())

    async def _dispatch(self, session: Session, turn: IncomingTurn) -> list[Reply]:
        text = turn.text.strip()
        if len(text) > MAX_TEXT:
            return [
                Reply.display(
                    f"That message is too long ({len(text)} characters; the limit is {MAX_TEXT})."
                ),
                self._question(session),
            ]
        # Replies a bridge could not deliver come first, whatever the turn.
        said = [r for r in session.take_undelivered() if r.kind is ReplyKind.DISPLAY]
        fresh = session.cuid is None or session.phase in (Phase.IDENTIFY, Phase.ENDED)
        if turn.cuid and session.cuid is None:
            # The bridge already knows who this is (websocket CUID frame, mapped Slack user).
            session.paused = False
            return said + self._close(session, await self._identify(session, turn.cuid))
        if turn.kind is TurnKind.START or session.paused:
            session.paused = False
            if turn.cuid and fresh:
                return said + self._close(session, await self._identify(session, turn.cuid))
            if not fresh:
                said.append(questions.where_you_stand(session, self._plan(session)))
            if turn.kind is TurnKind.START or not text:
                return [*said, self._question(session)]
        return [*said, *await self._answer(session, text)]

    async def _answer(self, session: Session, text: str) -> list[Reply]:
        word = text.lower()
        if word in texts.COMMANDS and word not in (
            c.lower() for c in self._question(session).choices
        ):
            return await self._command(session, word)
        handler = {
            Phase.IDENTIFY: self._on_identify,
            Phase.CONFIRM_ORDER: self._on_confirm,
            Phase.PICK_ORDER: self._on_pick,
            Phase.COLLECT: self._on_value,
            Phase.TOOL_FAILED: self._on_failure_choice,
            Phase.OFFER_ESCALATION: self._on_escalation_choice,
            Phase.POST_TASK: self._on_post_task,
            Phase.HELP_TEXT: self._on_help_text,
            Phase.CANCEL_REASON: self._on_cancel_reason,
            Phase.IDLE: self._on_idle,
            Phase.ENDED: self._on_ended,
        }[session.phase]
        said = await handler(session, text)
        return self._close(session, said)

    def _close(self, session: Session, said: list[Reply]) -> list[Reply]:
        """End a turn's replies with the pending question, unless the conversation ended."""
        if session.phase is Phase.ENDED or session.paused:
            return said
        return [*said, self._question(session)]

    # ------------------------------------------------------------------ run_task

    async def _on_identify(self, session: Session, text: str) -> list[Reply]:
        return await self._identify(session, text)

    async def _identify(self, session: Session, cuid: str) -> list[Reply]:
        """Look the technician up by CUID, then start the day's work."""
        cuid = cuid.strip().upper()
        if not cuid.isalnum() or not 2 <= len(cuid) <= 16:
            return [
                Reply.display(
                    "That doesn't look like a CUID. A CUID is letters and digits, like AB1234."
                )
            ]
        result = await self._tool(session, "find_technician", {"cuid": cuid}, step_id="identify")
        if not result.ok:
            if result.error_kind == "failed":
                text = (
                    f"I couldn't find a technician with CUID {cuid}. Please check it and try again."
                )
            else:
                text = f"I couldn't check your CUID just now: {result.message} Please try again."
            return [Reply.display(text)]
        if session.phase is Phase.ENDED:
            session.completed, session.escalated = [], []
        session.cuid = cuid
        session.technician_name = str(result.outputs.get("name") or cuid)
        said = [Reply.display(f"Hi {session.technician_name}! Let me fetch your work orders.")]
        return said + await self.run_task(session)

    async def run_task(self, session: Session, *, avoid: str | None = None) -> list[Reply]:
        """Fetch and prioritise the technician's orders, then propose the most urgent one.

        ``avoid`` names an order that should not be proposed first (one just cancelled).
        """
        assert session.cuid is not None
        result = await self._tool(session, "get_orders", {"cuid": session.cuid}, step_id="orders")
        if not result.ok:
            session.phase = Phase.IDLE
            return [Reply.display(f"I couldn't fetch your orders: {result.message}")]
        session.orders = list(result.outputs.get("orders", []))
        if not session.orders:
            session.phase = Phase.IDLE
            return [Reply.display("You have no open orders right now.")]
        if avoid and len(session.orders) > 1 and session.orders[0]["order_id"] == avoid:
            session.orders.append(session.orders.pop(0))
        session.phase = Phase.CONFIRM_ORDER
        return []

    async def _on_confirm(self, session: Session, text: str) -> list[Reply]:
        word = text.lower()
        if word in texts.YES:
            return await self._start_order(session, session.orders[0])
        if word in texts.NO:
            if len(session.orders) < 2:
                session.phase = Phase.IDLE
                return [Reply.display("That is your only open order.")]
            session.phase = Phase.PICK_ORDER
            return []
        return [Reply.display("Please answer yes or no.")]

    async def _on_pick(self, session: Session, text: str) -> list[Reply]:
        options = questions.pickable(session)
        word = text.strip().lower().lstrip("#")
        if word in ("none", "no", "neither"):
            session.phase = Phase.IDLE
            return [Reply.display("No order picked.")]
        chosen: dict[str, Any] | None = None
        if word.isascii() and word.isdigit() and 1 <= int(word) <= len(options):
            chosen = options[int(word) - 1]
        else:
            chosen = next((o for o in session.orders if o["order_id"].lower() == word), None)
        if chosen is None:
            return [
                Reply.display(
                    f"Please answer with a number from 1 to {len(options)}, an order id, or 'none'."
                )
            ]
        return await self._start_order(session, chosen)

    async def _start_order(self, session: Session, order: dict[str, Any]) -> list[Reply]:
        """Load the plan for the order's type and run its first steps."""
        plan = self.plans.for_order_type(order["order_type"])
        if plan is None:
            others = [o for o in session.orders if o["order_id"] != order["order_id"]]
            said = [
                Reply.display(
                    f"There is no plan for {order['order_type']} orders yet, so I can't guide you "
                    f"through {order['order_id']}. It stays on your list."
                )
            ]
            if others:
                # Put the order without a plan first so the pick list shows the others.
                session.orders = [order, *others]
                session.phase = Phase.PICK_ORDER
            else:
                session.phase = Phase.IDLE
            return said
        assert session.cuid is not None
        started = await self._tool(
            session,
            "start_order",
            {"order_id": order["order_id"], "cuid": session.cuid},
            step_id="start",
            order_id=order["order_id"],
        )
        if not started.ok:
            session.phase = Phase.IDLE
            return [Reply.display(f"I couldn't start {order['order_id']}: {started.message}")]
        session.clear_order()
        session.order = dict(order, status="in_progress")
        await self.sessions.start_plan(session, plan)
        said = [
            Reply.display(
                f"Starting {order['order_id']}: {plan.title}, "
                f"{texts.plural(len(plan.steps), 'step')}.",
                data={"order": texts.order_card(order)},
            )
        ]
        return said + await self.execute_plan_steps(session)

    # ------------------------------------------------------------------ execute_plan_steps

    async def execute_plan_steps(self, session: Session) -> list[Reply]:
        """Run steps from the current one until a value is needed, a tool fails, or the end."""
        plan = self._working_plan(session)
        order = session.order or {}
        said: list[Reply] = []
        while session.step_index < len(plan.steps):
            step = plan.steps[session.step_index]
            if step.when is not None and not evaluate(step.when, session.values):
                said.append(
                    Reply.display(f"{questions.step_label(plan, session)} not needed: {step.task}")
                )
                session.step_index += 1
                continue
            missing = [name for name in step.parameters if not self._known(session, name)]
            if missing:
                session.phase = Phase.COLLECT
                session.pending_param = missing[0]
                return said
            if step.tool is None:
                done = texts.format_done(
                    step.done or f"Done: {step.task}", questions.masked(plan, session.values)
                )
                said.append(Reply.display(done))
                session.step_index += 1
                continue
            result = await self._run_step(session, plan, step)
            if not result.ok:
                session.phase = Phase.TOOL_FAILED
                session.failure = result.message or f"{step.task} failed."
                return said
            for name, key in step.outputs.items():
                if key in result.outputs:
                    session.values[name] = result.outputs[key]
            session.failure = None
            done = texts.format_done(
                step.done or f"Done: {step.task}",
                questions.masked(plan, {**order, **session.values}),
            )
            said.append(
                Reply.display(
                    done, data={"step": step.id, "result": questions.masked(plan, result.outputs)}
                )
            )
            session.step_index += 1
        return said + await self._finish_order(session, plan)

    async def _run_step(self, session: Session, plan: Plan, step: Step) -> ToolResult:
        assert step.tool is not None and session.order is not None
        args = step_inputs(plan, step, session.values, session.order, session.cuid or "")
        session.calls += 1
        progress = _progress.get()
        if progress is not None:
            spec = self.agent.registry.get(step.tool)
            await progress(f"{spec.action if spec else step.task}…")
        return await self.agent.execute_task(
            step.tool,
            args,
            CallContext(
                session_id=session.key.as_str(),
                order_id=session.order["order_id"],
                step_id=step.id,
                attempt=session.calls,
                sensitive=plan.sensitive_names(),
            ),
        )

    def _known(self, session: Session, name: str) -> bool:
        """Whether a value is known; a value the order carries is copied into the session."""
        if name in session.values:
            return True
        order = session.order or {}
        details = order.get("details") or {}
        for source in (order, details):
            if source.get(name) not in (None, ""):
                session.values[name] = source[name]
                return True
        return False

    async def _on_value(self, session: Session, text: str) -> list[Reply]:
        plan = self._working_plan(session)
        pending = session.edit_queue[0] if session.edit_queue else session.pending_param
        if pending is None:  # Nothing asked: the state says so; recompute what is needed.
            return await self.execute_plan_steps(session)
        said: list[Reply] = []
        given = parse_values(text)
        known = {k: v for k, v in (given or {}).items() if k in plan.parameters}
        if known:
            unknown = sorted(set(given or {}) - set(known))
            if unknown:
                said.append(
                    Reply.display(f"I don't use {', '.join(unknown)} here, so I ignored it.")
                )
            problems = []
            for name, raw in known.items():
                checked = validate_value(plan.parameter(name), raw)
                if isinstance(checked, Invalid):
                    problems.append((name, checked.reason))
                else:
                    session.values[name] = checked.value
                    if name in session.edit_queue:
                        session.edit_queue.remove(name)
            pending_problem = next((r for n, r in problems if n == pending), None)
            for name, reason in problems:
                if name != pending:
                    said.append(self._invalid(plan.parameter(name), reason))
            if pending_problem is not None:
                return said + self._bad_value(session, plan.parameter(pending), pending_problem)
        elif session.edit_queue and text.lower() == "keep" and pending in session.values:
            session.edit_queue.pop(0)
        else:
            checked = validate_value(plan.parameter(pending), text)
            if isinstance(checked, Invalid):
                return said + self._bad_value(session, plan.parameter(pending), checked.reason)
            session.values[pending] = checked.value
            if session.edit_queue:
                session.edit_queue.pop(0)
        session.bad_attempts = 0
        if session.edit_queue:
            return said
        return said + await self.execute_plan_steps(session)

    def _invalid(self, param: Parameter, reason: str) -> Reply:
        example = f" For example: {param.example}." if param.example else ""
        value_name = param.name.replace("_", " ")
        return Reply.display(
            f"That {value_name} isn't valid: {reason}.{example}".replace("..", ".")
        )

    def _bad_value(self, session: Session, param: Parameter, reason: str) -> list[Reply]:
        session.bad_attempts += 1
        said = [self._invalid(param, reason)]
        if session.bad_attempts >= MAX_BAD_ATTEMPTS:
            session.phase = Phase.OFFER_ESCALATION
        return said

    async def _on_escalation_choice(self, session: Session, text: str) -> list[Reply]:
        word = text.lower()
        if word in ("try again", "retry", "again"):
            session.bad_attempts = 0
            session.phase = Phase.COLLECT
            return []
        if word == "escalate":
            param = session.edit_queue[0] if session.edit_queue else session.pending_param
            return await self._escalate_order(
                session, f"Could not enter a valid {param} after {MAX_BAD_ATTEMPTS} attempts."
            )
        return [Reply.display("Please answer 'try again' or 'escalate'.")]

    async def _on_failure_choice(self, session: Session, text: str) -> list[Reply]:
        step = self._current_step(session)
        word = text.lower()
        if word == "retry":
            return await self.execute_plan_steps(session)
        if word == "escalate":
            task = step.task if step else "Closing the order"
            return await self._escalate_order(session, session.failure or f"{task} failed.")
        if step is None:
            return [Reply.display("Please choose retry or escalate.")]
        if word == "edit":
            if not step.parameters:
                return [Reply.display("This step has no values to enter again.")]
            session.edit_queue = list(step.parameters)
            session.phase = Phase.COLLECT
            return []
        if word == "skip":
            return await self._skip(session)
        return [Reply.display("Please choose one of the options below.")]

    @staticmethod
    def _plan(session: Session) -> Plan | None:
        """The plan snapshot of the session's order (``SessionManager`` attaches it)."""
        return session.plan

    @staticmethod
    def _working_plan(session: Session) -> Plan:
        """The plan of a session that is in the middle of one (a broken state is a bug)."""
        if session.plan is None:
            raise RuntimeError(f"session {session.key.as_str()} is in {session.phase} with no plan")
        return session.plan

    def _question(self, session: Session) -> Reply:
        return questions.question(session, self._plan(session))

    def _current_step(self, session: Session) -> Step | None:
        plan = self._plan(session)
        return questions.current_step(plan, session) if plan else None

    async def _skip(self, session: Session) -> list[Reply]:
        step = self._current_step(session)
        if step is None:
            return [Reply.display("There is no step to skip right now.")]
        if not step.skippable:
            return [Reply.display(f"“{step.task}” can't be skipped.")]
        session.step_index += 1
        session.edit_queue = []
        session.failure = None
        said = [Reply.display(f"Skipped: {step.task}")]
        return said + await self.execute_plan_steps(session)

    async def _escalate_order(self, session: Session, reason: str) -> list[Reply]:
        """Hand the current order to a human; the technician moves on."""
        assert session.order is not None and session.cuid is not None
        order_id = session.order["order_id"]
        result = await self._escalate(session, reason, kind="order", order_id=order_id)
        if not result.ok:
            return [
                Reply.display(f"I couldn't escalate just now: {result.message} Please try again.")
            ]
        session.escalated.append(order_id)
        session.orders = [o for o in session.orders if o["order_id"] != order_id]
        session.clear_order()
        session.phase = Phase.POST_TASK
        ticket = result.outputs.get("escalation_id", "")
        return [
            Reply.display(
                f"I've escalated {order_id} to a human ({ticket}). They will contact you.",
                data={"escalation_id": ticket, "order_id": order_id},
            )
        ]

    # ------------------------------------------------------------------ post_task_interaction

    async def _finish_order(self, session: Session, plan: Plan) -> list[Reply]:
        assert session.order is not None
        order_id = session.order["order_id"]
        said: list[Reply] = []
        if not any(s.tool == "close_order" for s in plan.steps):
            # A plan without its own closing step still closes the order.
            closed = await self._tool(
                session, "close_order", {"order_id": order_id}, step_id="close", order_id=order_id
            )
            if not closed.ok:
                session.phase = Phase.TOOL_FAILED
                session.failure = closed.message
                return []
            said.append(Reply.display(f"Order {order_id} is closed.", data={"order_id": order_id}))
        session.completed.append(order_id)
        session.orders = [o for o in session.orders if o["order_id"] != order_id]
        session.phase = Phase.POST_TASK
        return said

    async def post_task_interaction(self, session: Session, text: str) -> list[Reply]:
        """After an order: the next order, help from a human, or the end of the conversation."""
        word = text.lower()
        if word in ("next", "next order", "n"):
            session.clear_order()
            said = await self.run_task(session)
            if session.phase is Phase.IDLE and not session.orders:
                said = [Reply.display("There are no more open orders.")]
            return said
        if word in ("help", "more help"):
            session.return_phase = session.phase
            session.phase = Phase.HELP_TEXT
            return []
        if word in ("end", "done", "bye"):
            return self._end(session)
        return [Reply.display("Please choose next, help or end.")]

    _on_post_task = post_task_interaction

    async def _on_idle(self, session: Session, text: str) -> list[Reply]:
        word = text.lower()
        if word in ("orders", "order", "next", "refresh"):
            said = await self.run_task(session)
            return said
        return await self.post_task_interaction(session, word)

    async def _on_help_text(self, session: Session, text: str) -> list[Reply]:
        if not text:
            return [Reply.display("Please describe what you need.")]
        order_id = session.order["order_id"] if session.order else None
        result = await self._escalate(session, text, kind="help", order_id=order_id)
        if not result.ok:
            return [
                Reply.display(
                    f"I couldn't pass that on just now: {result.message} Please send it again."
                )
            ]
        session.phase = session.return_phase or Phase.IDLE
        session.return_phase = None
        ticket = result.outputs.get("escalation_id", "")
        return [
            Reply.display(
                f"Thanks, I've passed that to a human ({ticket}). Someone will get back to you.",
                data={"escalation_id": ticket},
            )
        ]

    async def _on_cancel_reason(self, session: Session, text: str) -> list[Reply]:
        if not text:
            return [Reply.display("Please give a short reason.")]
        if text.lower() in texts.BACK:
            session.phase = session.return_phase or Phase.COLLECT
            session.return_phase = None
            return [Reply.display("OK, carrying on.")]
        assert session.order is not None
        order_id = session.order["order_id"]
        result = await self._tool(
            session,
            "release_order",
            {"order_id": order_id, "reason": text},
            step_id="cancel",
            order_id=order_id,
        )
        if not result.ok:
            return [Reply.display(f"I couldn't release {order_id}: {result.message}")]
        session.clear_order()
        said = [Reply.display(f"Left {order_id}; it is back in your queue.")]
        return said + await self.run_task(session, avoid=order_id)

    async def _on_ended(self, session: Session, text: str) -> list[Reply]:
        session.completed, session.escalated = [], []
        session.phase = Phase.IDLE
        said = [Reply.display(f"Welcome back, {session.technician_name}!")]
        return said + await self.run_task(session)

    def _end(self, session: Session) -> list[Reply]:
        done = ", ".join(session.completed) or "none"
        lines = [f"Orders completed this session: {done}."]
        if session.escalated:
            lines.append(f"Handed to a human: {', '.join(session.escalated)}.")
        lines.append("Thanks for your work today. Goodbye!")
        session.clear_order()
        session.phase = Phase.ENDED
        return [
            Reply.display(
                "\n".join(lines),
                data={"completed": list(session.completed), "escalated": list(session.escalated)},
            )
        ]

    # ------------------------------------------------------------------ commands

    async def _command(self, session: Session, word: str) -> list[Reply]:
        if word in texts.QUIT:
            session.paused = True
            return [
                Reply.display(
                    "Goodbye for now. Your progress is saved: come back any time "
                    "to pick up where you left off."
                )
            ]
        if word == "help":
            return [
                Reply.display(questions.help_text(session, self._plan(session))),
                self._question(session),
            ]
        if word == "status":
            return [questions.status(session, self._plan(session)), self._question(session)]
        in_plan = session.plan is not None and session.phase in (
            Phase.COLLECT,
            Phase.TOOL_FAILED,
            Phase.OFFER_ESCALATION,
        )
        if word == "skip":
            if not in_plan:
                return [
                    Reply.display("There is no step to skip right now."),
                    self._question(session),
                ]
            return self._close(session, await self._skip(session))
        # cancel
        if session.order is None or session.phase is Phase.CANCEL_REASON:
            return [
                Reply.display("There is no order in progress to cancel."),
                self._question(session),
            ]
        session.return_phase = session.phase
        session.phase = Phase.CANCEL_REASON
        return [self._question(session)]

    async def _escalate(
        self, session: Session, reason: str, *, kind: str, order_id: str | None
    ) -> ToolResult:
        """Record an escalation for a human: an order handed over, or a request for help."""
        args = {"cuid": session.cuid, "order_id": order_id, "reason": reason, "kind": kind}
        return await self._tool(session, "escalate", args, step_id=kind, order_id=order_id)

    async def _tool(
        self,
        session: Session,
        tool: str,
        args: dict[str, Any],
        *,
        step_id: str,
        order_id: str | None = None,
    ) -> ToolResult:
        """Run a tool the orchestrator itself needs (not a plan step) through the inner agent."""
        session.calls += 1
        return await self.agent.execute_task(
            tool,
            args,
            CallContext(
                session_id=session.key.as_str(),
                order_id=order_id,
                step_id=step_id,
                attempt=session.calls,
            ),
        )
