"""Logging setup: one readable format, uvicorn's lines in it too, tokens redacted from every record.

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
    (re.compile(r"\btat_[A-Za-z0-9_-]+"), lambda m: "[redacted]"),
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
    """Log to stderr at ``level``, with tokens redacted whatever logger they come from."""
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        stderr.setFormatter(Format())
        root.addHandler(stderr)
    root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
