"""A circuit breaker per host, so a system that is down costs the technician no waiting.

After ``failures`` transient failures in a row the breaker opens: calls fail at
once, with a message saying for how long. After ``cooldown`` seconds it
half-opens and lets one trial call through; a success closes it, a failure
opens it again for another cool-down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger("techassist.http_tools")

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """The state of one host's breaker; ``clock`` is injectable for tests of the logic."""

    def __init__(
        self,
        host: str,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state: State = "closed"
        self._trial_running = False

    @property
    def state(self) -> State:
        """closed, open or half_open (a cool-down that has passed counts as half-open)."""
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return self._state

    def wait_left(self) -> float | None:
        """``None`` if a call may go now (claiming the trial when half-open), else seconds left.

        While a half-open trial is running, other calls wait as if still open.
        """
        state = self.state
        if state == "closed":
            return None
        if state == "half_open" and not self._trial_running:
            self._state = "half_open"
            self._trial_running = True
            log.info("circuit breaker for %s half-open: trying one call", self.host)
            return None
        return max(self.cooldown - (self._clock() - self._opened_at), 0.0)

    def succeeded(self) -> None:
        """The host answered as it should: close."""
        if self._state != "closed":
            log.warning("circuit breaker for %s closed: the host answers again", self.host)
        self._state = "closed"
        self._failures = 0
        self._trial_running = False

    def failed(self) -> None:
        """The host failed transiently: count it, and open at the threshold or after a trial."""
        self._failures += 1
        if self._trial_running or self._failures >= self.threshold:
            if self._state != "open" or self._trial_running:
                log.warning(
                    "circuit breaker for %s opened after %d failures in a row; calls fail at "
                    "once for %g seconds",
                    self.host,
                    self._failures,
                    self.cooldown,
                )
            self._state = "open"
            self._opened_at = self._clock()
            self._trial_running = False


__all__ = ["CircuitBreaker", "State"]
