"""What the core reports about its own work, for whoever measures it.

The core calls an ``Observer`` at a few points of a turn: when a turn ends, when a
tool call ends, after waiting for a session's lock, on a stale save, on a lost
lease and on a repeated message answered from the stored replies. It knows
nothing of how these are kept: ``bot/metrics.py`` turns them into Prometheus
metrics, and the default, ``NO_OBSERVER``, drops them. Every method is called on
the event loop in the middle of a turn, so an implementation must be cheap and
must not raise.
"""

from __future__ import annotations

from typing import Protocol


class Observer(Protocol):
    """Receives the core's events; see the module docstring."""

    def turn(self, bridge: str, session: str, seconds: float) -> None:
        """A turn of ``session`` (its key string) from ``bridge`` ended after ``seconds``.

        The time includes waiting for the session's lock.
        """

    def tool_call(self, tool: str, seconds: float, error_kind: str | None) -> None:
        """A tool call ended (all its tries); ``error_kind`` is ``None`` on success."""

    def lock_wait(self, seconds: float) -> None:
        """A turn waited ``seconds`` for its session's lock (0 when it was free)."""

    def lease_lost(self) -> None:
        """A session's lock lease expired or was taken while its holder still worked."""

    def stale_save(self) -> None:
        """A save was refused because the session had been saved by someone else since."""

    def dedupe_hit(self) -> None:
        """A repeated message id was answered from the stored replies; nothing ran."""


class NoObserver:
    """An ``Observer`` that keeps nothing: the default."""

    def turn(self, bridge: str, session: str, seconds: float) -> None:
        pass

    def tool_call(self, tool: str, seconds: float, error_kind: str | None) -> None:
        pass

    def lock_wait(self, seconds: float) -> None:
        pass

    def lease_lost(self) -> None:
        pass

    def stale_save(self) -> None:
        pass

    def dedupe_hit(self) -> None:
        pass


NO_OBSERVER: Observer = NoObserver()

__all__ = ["NO_OBSERVER", "NoObserver", "Observer"]
