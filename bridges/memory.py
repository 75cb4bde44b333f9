"""The in-memory bridge: turns from Python calls, replies as objects and plain text.

Tests drive whole conversations through it, and ``techassist chat`` puts a
terminal on top of it. Like every bridge it only translates.
"""

from __future__ import annotations

import uuid

from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.turns import IncomingTurn, Reply, SessionKey, TurnKind, conversation_closed

BRIDGE = "memory"


class MemoryBridge:
    """One technician's conversation, driven by method calls."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        user: str = "tester",
        *,
        bridge: str = BRIDGE,
        workspace: str = "",
        channel: str = "",
    ) -> None:
        self.orchestrator = orchestrator
        self.key = SessionKey(bridge, workspace, channel, user)
        self.closed = False

    async def start(self, cuid: str | None = None) -> list[Reply]:
        """Open the conversation, as a new connection would."""
        return await self._send(IncomingTurn(self.key, kind=TurnKind.START, cuid=cuid))

    async def say(self, text: str, message_id: str | None = None) -> list[Reply]:
        """Send a typed message; each gets a fresh, unique message id unless one is given."""
        return await self._send(IncomingTurn(self.key, text=text, message_id=self._id(message_id)))

    async def click(self, value: str, message_id: str | None = None) -> list[Reply]:
        """Press the button whose value is ``value``."""
        return await self._send(
            IncomingTurn(
                self.key, text=value, kind=TurnKind.ACTION, message_id=self._id(message_id)
            )
        )

    def _id(self, message_id: str | None) -> str:
        return message_id if message_id is not None else uuid.uuid4().hex

    async def _send(self, turn: IncomingTurn) -> list[Reply]:
        replies = await self.orchestrator.handle(turn)
        self.closed = conversation_closed(replies)
        return replies


def render(replies: list[Reply]) -> str:
    """The replies as terminal text: each text, then the accepted answers."""
    lines: list[str] = []
    for reply in replies:
        lines.append(reply.text)
        if reply.choices:
            lines.append("  [" + " | ".join(reply.choices) + "]")
    return "\n".join(lines)
