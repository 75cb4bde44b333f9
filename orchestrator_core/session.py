"""The persisted state of one conversation."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter

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
    ENDED = "ended"
    """The technician ended the conversation; the next message starts afresh."""


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
    orders: list[dict[str, Any]] = Field(default_factory=list)
    """The technician's open orders, most urgent first."""
    order: dict[str, Any] | None = None
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
    pending_param: str | None = None
    bad_attempts: int = 0
    edit_queue: list[str] = Field(default_factory=list)
    """Parameters being entered again after a tool failure."""
    calls: int = 0
    """Tool calls made so far; each call's number keys its audit record, so a turn
    replayed after a crash finds the side effects it already caused."""
    failure: str | None = None
    """The last tool failure, in plain words."""
    return_phase: Phase | None = None
    """Where HELP_TEXT and CANCEL_REASON go back to."""

    completed: list[str] = Field(default_factory=list)
    escalated: list[str] = Field(default_factory=list)

    undelivered: str | None = None
    """Replies (JSON text) a bridge could not deliver; shown first when the technician is back."""

    version: int = Field(default=0, exclude=True)
    _plan: Plan | None = PrivateAttr(default=None)

    @property
    def plan(self) -> Plan | None:
        """The current order's plan snapshot, parsed; ``None`` between orders."""
        # Read from pydantic's store of private attributes: ``self._plan`` would go through
        # BaseModel.__getattr__ (about 1.4 µs), and a turn asks for the plan several times.
        private = self.__pydantic_private__
        assert private is not None  # a model with private attributes always has the store
        plan: Plan | None = private["_plan"]
        return plan

    def attach_plan(self, plan: Plan, digest: str) -> None:
        """Work the current order with ``plan``, whose snapshot is kept under ``digest``."""
        self._plan = plan
        self.plan_digest = digest
        self.legacy_plan = None

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
        self.plan_digest = None
        self.step_index = 0
        self.values = {}
        self.pending_param = None
        self.bad_attempts = 0
        self.edit_queue = []
        self.failure = None
