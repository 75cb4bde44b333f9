"""The websocket bridge's per-connection and per-address limits, as small counters.

They know no transport: the bridge asks them before it hands a frame to the core.

- ``MessageRate``: a connection's frames per minute, as a token bucket; a frame over
  the rate is answered "slow down" and not read, and a client that keeps sending
  regardless is closed (1008).
- ``IdentifyFailures``: failed identifications per client address in the last
  minute, across its connections; once an address reaches the limit, its attempts
  are refused unchecked until its oldest failure is a minute old.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

WINDOW = 60.0
"""Seconds over which failed identifications are counted."""
MAX_ADDRESSES = 10_000
"""Addresses whose recent failures are remembered; the least recently failing are dropped."""
REFUSED_IN_A_ROW = 10
"""Frames over the rate, one after another, after which a connection is closed (1008)."""


@dataclass(frozen=True)
class WebsocketLimits:
    """What the bridge allows; ``None`` is no limit."""

    idle_timeout: float | None = None
    """Seconds a client may send nothing before its connection is closed (1000)."""
    messages_per_minute: int | None = None
    """Frames one connection may send per minute."""
    identify_failures_per_minute: int | None = None
    """Failed identifications from one client address per minute."""
    refusal_delay: float = 1.0
    """Seconds an address over its identification limit waits for each refusal."""


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


class IdentifyFailures:
    """Failed identifications per client address over the last minute, shared by connections."""

    def __init__(
        self,
        per_minute: int,
        clock: Clock = time.monotonic,
        window: float = WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds until an attempt from ``address`` is checked again; 0: check it now."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.per_minute:
            return 0.0
        return times[0] + self.window - now

    def failed(self, address: str) -> None:
        """Count one failed identification from ``address``."""
        times = self._failures.pop(address, None)
        if times is None:
            times = deque(maxlen=self.per_minute)
        times.append(self.clock())
        self._failures[address] = times  # most recent last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
