"""What goes into the core and what comes out: transport-neutral turns and replies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from orchestrator_core.errors import KeyTooLong

#: The longest part of a ``SessionKey`` (a CUID, a Slack id): far above any real one.
MAX_KEY_PART = 128
#: The longest key string (``SessionKey.as_str``), %-escapes included.
MAX_KEY = 512
#: How every key string (``SessionKey.as_str``) begins.
KEY_PREFIX = "techassist:"


@dataclass(frozen=True, slots=True)
class SessionKey:
    """Identifies one conversation: which bridge, workspace, channel and user.

    Bridges without workspaces or channels pass empty strings, never ``None``.
    Each part is at most ``MAX_KEY_PART`` characters and the key string at most
    ``MAX_KEY``; a longer one raises ``KeyTooLong`` (a ``ValueError``).
    """

    bridge: str
    workspace: str
    channel: str
    user: str

    def __post_init__(self) -> None:
        for name in ("bridge", "workspace", "channel", "user"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"SessionKey.{name} must be a str, got {type(value).__name__}")
            if len(value) > MAX_KEY_PART:
                raise KeyTooLong(
                    f"SessionKey.{name} is {len(value)} characters; the limit is {MAX_KEY_PART}"
                )
        if not self.bridge or not self.user:
            raise ValueError(f"SessionKey needs a bridge and a user, got {self!r}")
        for name in ("bridge", "workspace", "channel", "user"):
            value = getattr(self, name)
            if not encodable(value):  # it is stored: keep it storable
                object.__setattr__(self, name, readable(value))
        if len(self.as_str()) > MAX_KEY:
            raise KeyTooLong(f"the session key is over {MAX_KEY} characters")

    def as_str(self) -> str:
        """The one string form of a key, used by every store; parts are %-escaped."""
        return _key_string(self.bridge, self.workspace, self.channel, self.user)

    @classmethod
    def from_str(cls, text: str) -> SessionKey:
        """The key whose ``as_str`` is ``text``; ``ValueError`` if ``text`` is no key string."""
        if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
            raise ValueError("not a session key string")
        parts = text[len(KEY_PREFIX) :].split(":")
        if len(parts) != 4:
            raise ValueError("a session key string has four parts")
        bridge, workspace, channel, user = (_UNESCAPE.sub(_unescaped, p) for p in parts)
        return cls(bridge, workspace, channel, user)


@lru_cache(maxsize=4096)
def _key_string(*parts: str) -> str:
    # Memoized: every store call and audit record asks for it, several times a turn.
    return KEY_PREFIX + ":".join(p.replace("%", "%25").replace(":", "%3A") for p in parts)


_UNESCAPE = re.compile("%(25|3A)")


def _unescaped(match: re.Match[str]) -> str:
    return "%" if match.group(1) == "25" else ":"


class TurnKind(str, Enum):
    """How a turn came in."""

    MESSAGE = "message"
    """The technician typed text."""
    ACTION = "action"
    """The technician pressed a button; ``text`` holds the button's value."""
    START = "start"
    """A new connection opened (websocket connect, chat start): say where things stand."""


@dataclass(frozen=True, slots=True)
class IncomingTurn:
    """One event from a technician, as a bridge hands it to ``Orchestrator.handle``.

    ``message_id`` lets the core recognise a redelivered event and answer it
    from the stored replies without running anything again. ``cuid`` is set by
    bridges that already know who the user is (a websocket client's first
    frame, a Slack user mapped to a technician).
    """

    key: SessionKey
    text: str = ""
    kind: TurnKind = TurnKind.MESSAGE
    message_id: str | None = None
    cuid: str | None = None

    def __post_init__(self) -> None:
        # Identifiers are stored and looked up, so one that cannot be encoded
        # becomes one that matches nothing. The text is left as it came: the
        # orchestrator refuses it with a reply, rather than change a value.
        for name in ("message_id", "cuid"):
            value = getattr(self, name)
            if value is not None and not encodable(value):
                object.__setattr__(self, name, readable(value))


def encodable(text: str) -> bool:
    """Whether ``text`` can be stored and sent as UTF-8: it holds no lone surrogate.

    JSON escapes such as ``"\\ud800"`` decode to a lone surrogate, which no
    encoder, database or serializer accepts.
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def readable(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, the replacement character."""
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


class ReplyKind(str, Enum):
    DISPLAY = "display"
    """Information; when it is the last reply of a turn, the conversation is over for now."""
    PROMPT = "prompt"
    """A question the technician is expected to answer."""


class Reply(BaseModel):
    """One message for the technician. Bridges render it as frames, Block Kit or HTML."""

    kind: ReplyKind
    text: str
    data: dict[str, Any] | None = None
    needs: str | None = None
    """The parameter this prompt asks for, if any."""
    choices: list[str] = Field(default_factory=list)
    """The answers accepted here; a bridge may render them as buttons."""

    @classmethod
    def display(cls, text: str, data: dict[str, Any] | None = None) -> Reply:
        return cls(kind=ReplyKind.DISPLAY, text=text, data=data)

    @classmethod
    def prompt(
        cls,
        text: str,
        *,
        needs: str | None = None,
        choices: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> Reply:
        return cls(kind=ReplyKind.PROMPT, text=text, needs=needs, choices=choices or [], data=data)


def conversation_closed(replies: list[Reply]) -> bool:
    """True when a turn's replies end the conversation (its last reply is no question)."""
    return bool(replies) and replies[-1].kind is ReplyKind.DISPLAY


__all__ = [
    "MAX_KEY",
    "MAX_KEY_PART",
    "IncomingTurn",
    "Reply",
    "ReplyKind",
    "SessionKey",
    "TurnKind",
    "conversation_closed",
    "encodable",
    "readable",
]
