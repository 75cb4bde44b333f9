"""Prometheus metrics: the core's ``Observer`` made of prometheus-client collectors.

Each app gets its own ``CollectorRegistry``, so several apps in one process (the
tests) never share or collide. The hot path is a dictionary lookup and an
``observe``/``inc`` on a cached label child: no string is formatted per turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: A session counts as active while its last turn on this instance is this recent (seconds).
ACTIVE_WINDOW = 300.0
#: Tool label values kept apart at most; any further tool name is counted as ``other``.
MAX_TOOLS = 200
# Seconds: from a cached answer (well under a millisecond) to a slow network tool.
TURN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOCK_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Keeps the core's events as Prometheus metrics in its own registry."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        r = self.registry
        self._turn_seconds = Histogram(
            "techassist_turn_seconds",
            "Turns handled, by bridge, and how long each took (lock wait included).",
            ["bridge"],
            buckets=TURN_BUCKETS,
            registry=r,
        )
        self._tool_seconds = Histogram(
            "techassist_tool_call_seconds",
            "Tool calls, by tool, and how long each took (all its tries).",
            ["tool"],
            buckets=TURN_BUCKETS,
            registry=r,
        )
        self._tool_errors = Counter(
            "techassist_tool_errors",
            "Tool calls that failed, by tool and error kind.",
            ["tool", "error_kind"],
            registry=r,
        )
        self._lock_wait = Histogram(
            "techassist_lock_wait_seconds",
            "Time a turn waited for its session's lock.",
            buckets=LOCK_BUCKETS,
            registry=r,
        )
        self._lease_losses = Counter(
            "techassist_lease_losses", "Session lock leases lost while held.", registry=r
        )
        self._stale_saves = Counter(
            "techassist_stale_saves",
            "Session saves refused because someone else saved the session first.",
            registry=r,
        )
        self._dedupe_hits = Counter(
            "techassist_dedupe_hits",
            "Repeated message ids answered from the stored replies, running nothing.",
            registry=r,
        )
        active = Gauge(
            "techassist_active_sessions",
            f"Sessions with a turn on this instance in the last {ACTIVE_WINDOW:g} seconds.",
            registry=r,
        )
        active.set_function(self._active_sessions)
        self.websocket_connections = Gauge(
            "techassist_websocket_connections",
            "Websocket connections open on this instance.",
            registry=r,
        )
        self.web_connections = Gauge(
            "techassist_web_connections",
            "Web chat pages connected to this instance (/ws).",
            registry=r,
        )
        self.slack_connected = Gauge(
            "techassist_slack_connected",
            "1 while the Socket Mode connection to Slack is up, 0 otherwise (or Slack is off).",
            registry=r,
        )
        self._turn_children: dict[str, Histogram] = {}
        self._tool_children: dict[str, Histogram] = {}
        self._error_children: dict[tuple[str, str], Counter] = {}
        self._last_turn: dict[str, float] = {}

    # ------------------------------------------------------------------ the Observer

    def turn(self, bridge: str, session: str, seconds: float) -> None:
        child = self._turn_children.get(bridge)
        if child is None:
            child = self._turn_children[bridge] = self._turn_seconds.labels(bridge)
        child.observe(seconds)
        last = self._last_turn
        last[session] = now = self._clock()
        if len(last) > 100_000:  # bounded between scrapes too
            self._prune(now)

    def tool_call(self, tool: str, seconds: float, error_kind: str | None) -> None:
        child = self._tool_children.get(tool)
        if child is None:
            if len(self._tool_children) >= MAX_TOOLS:
                tool = "other"
            child = self._tool_children[tool] = self._tool_seconds.labels(tool)
        child.observe(seconds)
        if error_kind is not None:
            errors = self._error_children.get((tool, error_kind))
            if errors is None:
                errors = self._tool_errors.labels(tool, error_kind)
                self._error_children[(tool, error_kind)] = errors
            errors.inc()

    def lock_wait(self, seconds: float) -> None:
        self._lock_wait.observe(seconds)

    def lease_lost(self) -> None:
        self._lease_losses.inc()

    def stale_save(self) -> None:
        self._stale_saves.inc()

    def dedupe_hit(self) -> None:
        self._dedupe_hits.inc()

    # ------------------------------------------------------------------ scraping

    def _prune(self, now: float) -> None:
        cutoff = now - ACTIVE_WINDOW
        self._last_turn = {k: t for k, t in self._last_turn.items() if t >= cutoff}

    def _active_sessions(self) -> float:
        self._prune(self._clock())
        return float(len(self._last_turn))

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
