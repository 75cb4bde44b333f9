"""Per-session locks, so the turns of one conversation run one at a time."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager


class SessionLock(ABC):
    """Serializes work on one session key.

    ``SessionManager`` callers (the orchestrator) hold it around a whole turn:
    load, state machine, save. Within one process the in-process lock is
    enough; several processes sharing a store need a distributed lease.
    """

    @abstractmethod
    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Return an async context manager that holds the lock for ``key``."""


class LocalLock(SessionLock):
    """An asyncio lock per key, dropped again when nobody holds or waits for it.

    Unlike a plain ``defaultdict(asyncio.Lock)``, the table does not grow with
    every conversation ever seen.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock_, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock_, users - 1)

    def __len__(self) -> int:
        """How many keys are locked or awaited right now."""
        return len(self._locks)
