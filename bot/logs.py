"""Logging setup: one readable format, uvicorn's lines in it too, tokens redacted from every record.

No line carries what a client sent: the websocket library's frame and handshake
lines (which uvicorn logs at DEBUG) are dropped, Slack's libraries log nothing
below INFO (their DEBUG lines hold request bodies), and control characters in
every message are escaped, so a value cannot forge a line or colour a terminal.

A line reads ``2026-12-01 10:28:15 INFO    techassist.server: message``: the time, the
level, the logger and the message. uvicorn logs its own lines under
``uvicorn.error`` whatever they say; they are shown as ``uvicorn``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

# Slack bot, user and app tokens; slack_sdk logs request headers at DEBUG.
_TOKEN = re.compile(r"\b(xox[abposre]|xapp)-[A-Za-z0-9-]+")
# TechAssist's own tokens wherever they appear, an Authorization header's value (the
# websockets library logs request headers at DEBUG), and the query string of a logged
# path (uvicorn logs ``"WebSocket /start_task?token=..."`` at INFO).
_SECRETS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (_TOKEN, lambda m: f"{m.group(1)}-[redacted]"),
    (re.compile(r"\bta[tl]_[A-Za-z0-9_-]+"), lambda m: "[redacted]"),
    (
        re.compile(r"\b((?:proxy-)?authorization|cookie)(\s*[:=]\s*)[^\r\n]*", re.IGNORECASE),
        lambda m: f"{m.group(1)}{m.group(2)}[redacted]",
    ),
    (re.compile(r"\bbearer\s+\S+", re.IGNORECASE), lambda m: "Bearer [redacted]"),
    (
        re.compile(r"((?:^|[\s\"'(])/[^\s?\"']*)\?[^\s\"']*"),
        lambda m: f"{m.group(1)}?[redacted]",
    ),
    (re.compile(r"\btoken=[^\s&\"']*", re.IGNORECASE), lambda m: "token=[redacted]"),
]
# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Loggers whose DEBUG lines carry request or frame contents: held at INFO and above.
#: ``techassist.slack.bolt`` is the logger the Slack bridge hands to bolt and its
#: Socket Mode client, which log each received envelope whole (a technician's words,
#: a Wi-Fi password among them) at DEBUG.
QUIET_BELOW_INFO = ("websockets", "slack_sdk", "slack_bolt", "aiohttp", "techassist.slack.bolt")

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        name: {"handlers": [], "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    },
}
"""uvicorn's ``log_config``: its loggers keep no handlers of their own and pass their records
to the root logger, so they come out in TechAssist's format, redacted like the rest."""


def redact(message: str) -> str:
    """A log message without tokens, credentials or a request's query string."""
    for pattern, replacement in _SECRETS:
        message = pattern.sub(replacement, message)
    return message


class RedactTokens(logging.Filter):
    """Redact tokens (Slack's and TechAssist's), credentials and query strings from a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(_escape, text)


class EscapeControls(logging.Filter):
    """Escape control characters in a record's final message (tracebacks stay as they are)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CONTROL.search(message):
            record.msg = escape_controls(message)
            record.args = None
        return True


def _quiet(name: str) -> bool:
    """Whether logger ``name`` is one of ``QUIET_BELOW_INFO`` or below one."""
    return any(name == quiet or name.startswith(quiet + ".") for quiet in QUIET_BELOW_INFO)


class DropFrames(logging.Filter):
    """Drop the websocket library's DEBUG lines: frames (``< TEXT '...'``), handshakes, states.

    uvicorn hands the library its own ``uvicorn.error`` logger, so they cannot be
    told apart by logger name; they all start with a direction mark.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        if _quiet(record.name):
            return False
        msg = record.msg
        return not (isinstance(msg, str) and msg[:2] in ("< ", "> ", "= ", "! "))


class Format(logging.Formatter):
    """TechAssist's line format; uvicorn's ``uvicorn.error`` logger is shown as ``uvicorn``."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "uvicorn.error":
            record = logging.makeLogRecord(record.__dict__)
            record.name = "uvicorn"
        return super().format(record)


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``: tokens redacted, frames dropped, control characters escaped."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(Format())
        root.addHandler(stderr)
    root.setLevel(level)
    for name in QUIET_BELOW_INFO:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    for handler in root.handlers:
        for kind in (DropFrames, RedactTokens, EscapeControls):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())
