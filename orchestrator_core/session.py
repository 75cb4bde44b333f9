"""The persisted state of one conversation."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from orchestrator_core.turns import Reply, SessionKey

#: How many processed message ids a session remembers for de-duplication.
PROCESSED_LIMIT = 16

_REPLIES = TypeAdapter(list[Reply])


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

    plan: str | None = None
    """A snapshot of the plan the current order started with, as JSON text.

    Kept as text so loading a session does not rebuild the plan on every turn;
    the orchestrator parses it once per digest and caches it."""
    plan_digest: str | None = None
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
    processed: dict[str, str] = Field(default_factory=dict)
    """Replies (JSON text) of recently processed message ids, oldest first; read only
    when a message id comes again."""

    undelivered: str | None = None
    """Replies (JSON text) a bridge could not deliver; shown first when the technician is back."""

    version: int = Field(default=0, exclude=True)

    def remember(self, message_id: str | None, replies: list[Reply]) -> None:
        """Record a processed message id with its replies, forgetting the oldest past the limit."""
        if message_id is None:
            return
        self.processed[message_id] = _REPLIES.dump_json(replies).decode()
        while len(self.processed) > PROCESSED_LIMIT:
            del self.processed[next(iter(self.processed))]

    def replies_for(self, message_id: str | None) -> list[Reply] | None:
        """The replies already given to ``message_id``, or ``None`` if it is new."""
        if message_id is None or message_id not in self.processed:
            return None
        return _REPLIES.validate_json(self.processed[message_id])

    def keep_undelivered(self, replies: list[Reply]) -> None:
        """Hold replies that never reached the technician, after any held before."""
        self.undelivered = _REPLIES.dump_json(self.take_undelivered() + replies).decode()

    def take_undelivered(self) -> list[Reply]:
        """The held undelivered replies, which are no longer held afterwards."""
        held = _REPLIES.validate_json(self.undelivered) if self.undelivered else []
        self.undelivered = None
        return held

    def clear_order(self) -> None:
        """Forget the current order's plan and values; keep identity and the order list."""
        self.order = None
        self.plan = None
        self.plan_digest = None
        self.step_index = 0
        self.values = {}
        self.pending_param = None
        self.bad_attempts = 0
        self.edit_queue = []
        self.failure = None
