"""The persisted state of one conversation."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, field_validator

from orchestrator_core.notices import Notice
from orchestrator_core.orders import Order
from orchestrator_core.turns import Reply, SessionKey

if TYPE_CHECKING:
    from orchestrator_core.plans import Plan

REPLIES = TypeAdapter(list[Reply])
"""Replies to and from JSON text: answers and undelivered replies are kept as text."""


class Phase(str, Enum):
    """Where the conversation stands, i.e. which answer it is waiting for."""

    IDENTIFY = "identify"
    """Waiting for the technician's CUID."""
    CONFIRM_ORDER = "confirm_order"
    """The most urgent order was proposed; waiting for yes or no."""
    PICK_ORDER = "pick_order"
    """The other open orders were listed; waiting for a number, an id or 'none'."""
    COLLECT = "collect"
    """Waiting for a value a plan step needs."""
    TOOL_FAILED = "tool_failed"
    """A step's tool failed; waiting for retry, edit, skip or escalate."""
    OFFER_ESCALATION = "offer_escalation"
    """Three bad values in a row; waiting for 'try again' or 'escalate'."""
    POST_TASK = "post_task"
    """An order was finished or handed over; waiting for next, help or end."""
    HELP_TEXT = "help_text"
    """Waiting for free text to pass on to a human."""
    CANCEL_REASON = "cancel_reason"
    """Waiting for the reason the technician leaves the current order."""
    IDLE = "idle"
    """No order at hand; waiting for orders, help or end."""
    OFFER_HANDBACK = "offer_handback"
    """A dispatcher handed an escalated order back; waiting for yes (resume it) or no."""
    ENDED = "ended"
    """The technician ended the conversation; the next message starts afresh."""


class Failure(BaseModel):
    """A step's tool failed: what the technician was told, and which ways out help.

    ``transient``: trying again may work. ``fault``: something on site the
    technician can fix; answering ``confirm`` checks again with ``retry_args``.
    ``failed``: nothing the technician can retry or re-enter fixes it.
    """

    message: str
    kind: Literal["transient", "fault", "failed"] = "failed"
    confirm: str | None = None
    retry_args: dict[str, Any] = Field(default_factory=dict)
    tries: int = 1
    """Failures of this step in a row."""


class Delivered(BaseModel):
    """A notice a bridge took from the outbox to push, and when it took it."""

    notice: Notice
    at: float
    """When it was taken for a push, in seconds since the epoch."""


class ParkedOrder(BaseModel):
    """An escalated order, kept as it stood so a hand-back resumes at the same step.

    ``values`` holds the sensitive ones only in a loaded session: the stored form
    keeps those named in ``sensitive`` sealed in ``sealed`` (see ``SessionManager``).
    """

    order: Order
    plan_digest: str
    step_index: int = 0
    values: dict[str, Any] = Field(default_factory=dict)
    pending_param: str | None = None
    sensitive: list[str] = Field(default_factory=list)
    """The names the plan marks sensitive, sealed in the stored form."""
    sealed: dict[str, str] = Field(default_factory=dict)
    escalation_id: str | None = None


class Session(BaseModel):
    """Everything a conversation needs to continue in any process that reaches the store.

    ``version`` is the store version this copy was loaded at; it is not part of
    the serialized form.
    """

    model_config = ConfigDict(validate_assignment=False)

    key: SessionKey
    phase: Phase = Phase.IDENTIFY
    paused: bool = False
    """The technician quit; the next turn first says where things stand."""

    cuid: str | None = None
    technician_name: str | None = None
    orders: list[Order] = Field(default_factory=list)
    """The technician's open orders that a plan can guide, most urgent first."""
    waiting: list[Order] = Field(default_factory=list)
    """Open orders of a type no plan serves yet: listed, never proposed."""
    order: Order | None = None
    """The order being worked on."""

    plan_digest: str | None = None
    """Names the snapshot of the plan the current order started with.

    The snapshot itself is kept once per digest beside the sessions (see
    ``SessionStore.put_snapshot``), and ``SessionManager`` attaches it, parsed,
    when it loads the session: see ``plan``."""
    legacy_plan: str | None = Field(default=None, validation_alias="plan", exclude=True)
    """The snapshot as JSON text, as sessions saved before 0.2 carried it; moved out on load."""
    step_index: int = 0
    values: dict[str, Any] = Field(default_factory=dict)
    """Values collected from the technician and outputs stored by steps."""
    sealed: dict[str, str] = Field(default_factory=dict)
    """Only in the stored form: the values the plan marks sensitive, sealed (see
    ``SessionManager``); a loaded session holds them in ``values`` again."""
    pending_param: str | None = None
    why: str | None = None
    """Why the pending value is asked for, when it is not the plan's own question: the
    order lacks it, or a tool refused the value given."""
    bad_attempts: int = 0
    edit_queue: list[str] = Field(default_factory=list)
    """Parameters being entered again after a tool failure."""
    calls: int = 0
    """Tool calls made so far; each call's number keys its audit record, so a turn
    replayed after a crash finds the side effects it already caused."""
    failure: Failure | None = None
    """The current step's tool failure."""
    return_phase: Phase | None = None
    """Where HELP_TEXT and CANCEL_REASON go back to."""

    completed: list[str] = Field(default_factory=list)
    escalated: list[str] = Field(default_factory=list)
    parked: dict[str, ParkedOrder] = Field(default_factory=dict)
    """Escalated orders by id, kept at their step until a dispatcher hands them back or
    closes them."""
    last_tool: str | None = None
    """The last tool call and how it went ("activate_ont: ok", "check_light_levels: fault"),
    for the dispatcher's list of sessions."""
    handed_back: list[str] = Field(default_factory=list)
    """Parked orders a dispatcher handed back, to offer when no order is at hand."""

    last_question: str | None = None
    repeats: int = 0
    """How many turns in a row ended on ``last_question``."""

    undelivered: str | None = None
    """Replies (JSON text) a bridge could not deliver; shown first when the technician is back."""

    outbox: list[Notice] = Field(default_factory=list)
    """Notices for the technician not delivered yet, oldest first (``Orchestrator.notify``)."""
    delivered: list[Delivered] = Field(default_factory=list)
    """The last notices pushed to the technician, oldest first (``Orchestrator.take_notices``):
    a page that lost one with its connection gets it again (``Orchestrator.resume_notices``)."""
    remind_at: float | None = None
    """When the technician, idle mid-order, is reminded (seconds since the epoch); set by
    each technician turn, cleared once the reminder is in the outbox."""
    last_turn_at: float | None = None
    """When the technician last spoke (seconds since the epoch)."""

    version: int = Field(default=0, exclude=True)
    _plan: Plan | None = PrivateAttr(default=None)
    _unsaved_snapshot: str | None = PrivateAttr(default=None)

    @field_validator("failure", mode="before")
    @classmethod
    def _failure_from_text(cls, value: Any) -> Any:
        # Sessions saved before failures were classified kept the message alone.
        return {"message": value, "kind": "transient"} if isinstance(value, str) else value

    @property
    def plan(self) -> Plan | None:
        """The current order's plan snapshot, parsed; ``None`` between orders."""
        return self._plan

    def attach_plan(self, plan: Plan, digest: str, *, unsaved: str | None = None) -> None:
        """Work the current order with ``plan``, whose snapshot is kept under ``digest``.

        ``unsaved``: the snapshot's JSON text when the store may not hold it yet
        (the order starts now); the next save keeps it with the session, in the
        same step, so no stored session ever refers to a missing snapshot.
        """
        self._plan = plan
        self.plan_digest = digest
        self.legacy_plan = None
        self._unsaved_snapshot = unsaved

    @property
    def unsaved_snapshot(self) -> str | None:
        """The plan snapshot's JSON text the next save must keep, if any (``attach_plan``)."""
        return self._unsaved_snapshot

    def snapshot_saved(self) -> None:
        """The store now holds the plan snapshot: later saves need not send it."""
        self._unsaved_snapshot = None

    def keep_undelivered(self, replies: list[Reply]) -> None:
        """Hold replies that never reached the technician, after any held before."""
        self.undelivered = REPLIES.dump_json(self.take_undelivered() + replies).decode()

    def take_undelivered(self) -> list[Reply]:
        """The held undelivered replies, which are no longer held afterwards."""
        if not self.undelivered:
            return []
        held = REPLIES.validate_json(self.undelivered)
        self.undelivered = None
        return held

    def clear_order(self) -> None:
        """Forget the current order's plan and values; keep identity and the order list."""
        self.order = None
        self._plan = None
        self._unsaved_snapshot = None
        self.plan_digest = None
        self.step_index = 0
        self.values = {}
        self.pending_param = None
        self.why = None
        self.bad_attempts = 0
        self.edit_queue = []
        self.failure = None
