"""Messages nobody asked for: the outbox notices, and the hint that some are waiting.

A dispatcher's answer, a hand-back or a reminder reaches a technician who did
not just speak. ``Orchestrator.notify`` keeps it as a ``Notice`` in the
session's outbox (saved with the session, under its lock and version check),
then publishes the session's key on the ``Notifier``: a hint, never the message
itself, so nothing is lost when nobody listens. A bridge that can push (web
chat, Slack) takes the outbox on that hint, or when a connection opens
(``Orchestrator.take_notices``); the next technician turn drains whatever is
left, in front of its own replies, on every bridge.

The notifier comes from the same factory as the session store: in-process
beside the memory and SQLite stores (``LocalNotifier``), a pub/sub channel on
Redis (``stores.redis.RedisNotifier``), ``LISTEN/NOTIFY`` on PostgreSQL
(``pg.notices.PostgresNotifier``), so the instance that holds the technician's
connection hears it whichever instance notified.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from orchestrator_core.turns import Reply

log = logging.getLogger("techassist.notices")

NoticeKind = Literal["answer", "reminder", "handback", "cancelled", "info"]
"""What a notice is: a dispatcher's answer, an idle reminder, an order handed back,
an order cancelled by a dispatcher, or anything else."""

#: Called with a session key string (``SessionKey.as_str``) that has notices waiting.
Deliver = Callable[[str], Awaitable[None]]


def new_notice_id() -> str:
    """A fresh notice id: ``n-`` and 16 hex digits."""
    return "n-" + secrets.token_hex(8)


class Notice(BaseModel):
    """One message for a technician that no turn of theirs asked for."""

    id: str = Field(default_factory=new_notice_id)
    kind: NoticeKind = "info"
    text: str
    at: float = Field(default_factory=time.time)
    """When it was notified, in seconds since the epoch."""
    data: dict[str, Any] = Field(default_factory=dict)
    """What it is about, e.g. ``{"escalation_id": "ESC-0001", "order_id": "WO-1"}``."""

    def as_reply(self) -> Reply:
        """The notice as a reply a bridge renders like any other; ``data`` says it is one."""
        return Reply.display(
            self.text, data={"notice": self.kind, "notice_id": self.id, **self.data}
        )


class Notifier(Protocol):
    """Tells every instance that a session has notices waiting."""

    shared: bool
    """Whether other processes hear what this one publishes."""

    async def publish(self, key: str) -> None:
        """Say that session ``key`` (``SessionKey.as_str``) has notices; ``StoreError`` if it
        cannot."""
        ...

    async def watch(self, deliver: Deliver) -> None:
        """Call ``deliver(key)`` for every key published, by any instance, until cancelled."""
        ...


class LocalNotifier:
    """The notifier of a store no other process shares: hints stay in the process.

    ``publish`` only queues the key; each ``watch`` hands the keys on in order,
    so a publisher never waits for a bridge.
    """

    shared = False

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str]] = set()

    async def publish(self, key: str) -> None:
        for queue in self._queues:
            queue.put_nowait(key)

    async def watch(self, deliver: Deliver) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues.add(queue)
        try:
            while True:
                await hand_on(deliver, await queue.get())
        finally:
            self._queues.discard(queue)


async def hand_on(deliver: Deliver, key: str) -> None:
    """Call ``deliver(key)``; a failing delivery is logged, and the watch goes on."""
    try:
        await deliver(key)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("delivering the notices of %s failed; they wait for the next turn", key)


def reminder_text(order_id: str) -> str:
    """What an idle technician is reminded of."""
    return f"Still on {order_id}? Say 'status' to see where we are."


__all__ = [
    "Deliver",
    "LocalNotifier",
    "Notice",
    "NoticeKind",
    "Notifier",
    "hand_on",
    "new_notice_id",
    "reminder_text",
]
