"""Checks the websocket bridges share: browser origins, frame nesting and a message rate.

Not a bridge: it imports no core module and no other bridge, so the legacy
websocket bridge and the web chat both use it and stay apart from each other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import urlsplit

#: A JSON frame whose arrays and objects nest deeper than this is refused unparsed.
MAX_DEPTH = 32
#: Frames refused in a row after which a client is taken to ignore "slow down".
REFUSED_IN_A_ROW = 10

Clock = Callable[[], float]

# A JSON string; an unclosed one runs to the end, so that nothing backtracks.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def too_deep(raw: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than ``limit``.

    Read before parsing, in one linear pass: ``json.loads`` recurses, so a few
    kilobytes of ``[`` would otherwise reach the recursion limit.
    """
    depth = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", raw)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return True
    return False


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case, the default port left out; None if unreadable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https", "ws", "wss") or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    default = 443 if scheme in ("https", "wss") else 80
    return f"{scheme}://{shown}" + (f":{port}" if port is not None and port != default else "")


class MessageRate:
    """A token bucket of ``per_minute`` frames, refilled continuously."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.at = clock()
        self.refused_in_a_row = 0

    def take(self) -> bool:
        """Whether one more frame may be read now; counts the refusals in a row."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

    @property
    def abused(self) -> bool:
        """The client kept sending after being told to slow down."""
        return self.refused_in_a_row >= REFUSED_IN_A_ROW
