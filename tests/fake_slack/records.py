"""What the fake Slack saw and did, recorded for assertions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class ApiCall:
    """One Web API request and the fake's answer (including injected 429s and errors)."""

    method: str
    args: dict[str, Any]
    """Query and body arguments merged; ``blocks``, ``attachments`` and ``metadata`` parsed."""
    token: str | None
    status: int
    response: dict[str, Any]
    at: float
    """``time.monotonic()`` when the request arrived."""
    encoding: str
    """``"json"``, ``"form"`` or ``"query"``: how the arguments travelled."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class Connection:
    """One Socket Mode websocket, from ``hello`` until it closed."""

    index: int
    ticket: str
    opened_at: float
    ws: web.WebSocketResponse = field(repr=False)
    request: web.Request = field(repr=False)
    closed_at: float | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


@dataclass
class Envelope:
    """One envelope the fake sent over Socket Mode, and when (if ever) it was acked."""

    body: dict[str, Any]
    sent_at: float
    connection: int | None
    """Index of the connection it went out on; ``None`` if the socket broke while sending."""
    acked_at: float | None = None

    @property
    def envelope_id(self) -> str:
        return str(self.body["envelope_id"])

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.body["payload"]
        return payload

    @property
    def event(self) -> dict[str, Any] | None:
        event: dict[str, Any] | None = self.payload.get("event")
        return event

    @property
    def event_id(self) -> str | None:
        return self.payload.get("event_id")

    @property
    def retry_attempt(self) -> int:
        return int(self.body.get("retry_attempt", 0))

    @property
    def retry_reason(self) -> str:
        return str(self.body.get("retry_reason", ""))

    @property
    def acked(self) -> bool:
        return self.acked_at is not None

    def describe(self) -> str:
        what = self.type
        if self.event is not None:
            what = f"{what}/{self.event.get('type')}"
            if self.event.get("subtype"):
                what = f"{what}/{self.event['subtype']}"
        elif "type" in self.payload:
            what = f"{what}/{self.payload['type']}"
        state = f"acked after {self.acked_at - self.sent_at:.3f}s" if self.acked_at else "unacked"
        return (
            f"{what} envelope={self.envelope_id[:8]} event_id={self.event_id} "
            f"retry={self.retry_attempt} conn={self.connection} {state}"
        )


@dataclass
class Ack:
    """One acknowledgement the client sent back over the socket."""

    envelope_id: str
    payload: dict[str, Any] | None
    at: float
    """``time.monotonic()`` when it arrived."""
    connection: int
    envelope: Envelope | None
    """The envelope it acknowledges; ``None`` if the fake never sent that id."""

    @property
    def latency(self) -> float | None:
        """Seconds from sending the envelope to receiving this ack."""
        return None if self.envelope is None else self.at - self.envelope.sent_at


@dataclass
class ResponseUrlPost:
    """One POST to an interaction's ``response_url``."""

    path: str
    body: dict[str, Any]
    at: float


def short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
