"""Logging setup: one format, and tokens redacted from every record."""

from __future__ import annotations

import logging
import re

# Slack bot, user and app tokens; slack_sdk logs request headers at DEBUG.
_TOKEN = re.compile(r"\b(xox[abposre]|xapp)-[A-Za-z0-9-]+")


class RedactTokens(logging.Filter):
    """Replace anything shaped like a Slack token in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN.search(message):
            record.msg = _TOKEN.sub(lambda m: f"{m.group(1)}-[redacted]", message)
            record.args = None
        return True


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, with tokens redacted whatever logger they come from."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
