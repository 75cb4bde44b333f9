"""Event-driven waiting: re-check a condition whenever something changes, never on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Changes:
    """Wakes every waiter each time the fake records something.

    Each ``notify()`` sets the current event and replaces it, so a waiter that captured the
    event before checking its condition cannot miss a change (there is no ``await`` between the
    check and the capture).
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def until(self, predicate: Callable[[], T | None], timeout: float | None) -> T | None:
        """``predicate()`` once it is truthy; its last (falsy) value after ``timeout`` seconds.

        ``None`` or ``inf`` waits until cancelled.
        """
        loop = asyncio.get_running_loop()
        end = None if timeout is None or timeout == float("inf") else loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            changed = self._event
            remaining = None if end is None else end - loop.time()
            if remaining is not None and remaining <= 0:
                return value
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return predicate()
