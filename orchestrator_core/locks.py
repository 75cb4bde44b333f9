"""Per-session leases, so the turns of one conversation run one at a time.

A lease has a lifetime: a holder that stops (a crashed instance) blocks the
session for at most ``lifetime`` seconds. While the holder runs, the lease is
renewed in the background every third of its lifetime, so a long tool keeps
it. Waiting for a held lease is bounded by ``wait`` seconds. Every backend
honours one contract (``tests/orchestrator_core/test_lock_contract.py``):
mutual exclusion, expiry, renewal, and release or renewal by a holder whose
lease was taken over refused.

A lease can still be lost (renewal failed, the process stalled past the
lifetime). That is safe because saves are fenced by the session's version:
a writer whose lease was taken over fails its save with ``StaleVersionError``,
and the orchestrator runs the turn again from the fresh state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator_core.errors import LockError, LockUnavailable

if TYPE_CHECKING:
    from orchestrator_core.stores.base import StoredSession

log = logging.getLogger("techassist.locks")

#: Seconds a lease lasts without renewal.
DEFAULT_LIFETIME = 30.0
#: Seconds a turn waits for a session another turn holds before giving up.
DEFAULT_WAIT = 60.0


@dataclass
class Prefetched:
    """What a lock backend that shares the store's server read as it took the lease.

    The session as stored (``None``: no such session) and, when the turn has a
    message id, the replies already stored for it; read in the same atomic step
    as the lease was taken, so they are as fresh as a load after it.
    """

    stored: StoredSession | None
    message_id: str | None
    answer: str | None
    loaded: bool = False


@dataclass
class Lease:
    """A held lease: ``lost`` once it is known to belong to someone else.

    ``prefetched`` is set by a backend that loads with the lease (Redis); a
    store that releases the lease with the turn's save sets ``released``.
    """

    key: str
    token: str
    message_id: str | None = None
    lost: bool = False
    prefetched: Prefetched | None = None
    released: bool = False

    def check(self) -> None:
        """Raise ``LockError`` if the lease is known to be lost."""
        if self.lost:
            raise LockError(f"the lease on {self.key!r} was lost")


class SessionLock(ABC):
    """Serializes work on one session key with leases of ``lifetime`` seconds.

    ``SessionManager`` callers (the orchestrator) hold it around a whole turn:
    load, state machine, save. ``renew=False`` turns the background renewal
    off (tests use it to let a lease expire mid-turn).
    """

    def __init__(
        self,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        wait: float = DEFAULT_WAIT,
        renew: bool = True,
    ) -> None:
        if lifetime <= 0 or wait < 0:
            raise ValueError("a lease needs a positive lifetime and a wait of 0 or more")
        self.lifetime = lifetime
        self.wait = wait
        self.renew = renew

    @asynccontextmanager
    async def lock(self, key: str, *, message_id: str | None = None) -> AsyncIterator[Lease]:
        """Hold the lease on ``key``; ``LockError`` if it stays taken for ``wait`` seconds.

        ``message_id``: the turn's, so a backend that reads with the lease can
        fetch its stored replies too (``Lease.prefetched``).
        """
        lease = Lease(key, secrets.token_hex(16), message_id)
        await self._acquire(lease)
        renewer = asyncio.create_task(self._keep(lease)) if self.renew else None
        try:
            yield lease
        finally:
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
            released = lease.released
            if not released:
                try:
                    released = await self._release(key, lease.token)
                except LockUnavailable as exc:
                    # Its server is down: the lease ends with its lifetime instead.
                    log.warning("cannot release the lease on %s: %s", key, exc)
                    lease.lost = True
                except LockError:
                    released = False
            if not released and not lease.lost:
                lease.lost = True
                log.warning("the lease on %s expired before its holder released it", key)

    async def _keep(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(self.lifetime / 3)
            try:
                renewed = await self._renew(lease.key, lease.token)
            except LockUnavailable as exc:
                # Whether the lease still holds cannot be known: count it lost, so the
                # turn's save is refused and the turn runs again on what is stored.
                log.warning("cannot renew the lease on %s: %s", lease.key, exc)
                lease.lost = True
                return
            except LockError:
                renewed = False
            if not renewed:
                lease.lost = True
                log.warning("the lease on %s was lost while its holder ran", lease.key)
                return

    @abstractmethod
    async def _acquire(self, lease: Lease) -> None:
        """Take ``lease``, waiting at most ``self.wait``; else ``LockError``."""

    async def _poll(self, key: str, take: Callable[[], Awaitable[bool]]) -> None:
        """Call ``take`` until it takes the lease, backing off from 5 to 100 ms with jitter;
        ``LockError`` once ``self.wait`` is over. For locks held in another process."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.wait
        pause = 0.005
        while not await take():
            now = loop.time()
            if now >= end:
                raise LockError(f"session {key!r} stayed locked for {self.wait:g} s")
            await asyncio.sleep(min(pause * random.uniform(0.5, 1.5), end - now))
            pause = min(pause * 2, 0.1)

    @abstractmethod
    async def _release(self, key: str, token: str) -> bool:
        """Give the lease up if ``token`` still holds it; ``False`` if it does not."""

    @abstractmethod
    async def _renew(self, key: str, token: str) -> bool:
        """Extend the lease to a full lifetime if ``token`` still holds it."""


@dataclass
class _Held:
    token: str
    deadline: float
    released: asyncio.Event = field(default_factory=asyncio.Event)


class LocalLock(SessionLock):
    """Leases in this process: a table of holders, dropped again on release.

    Unlike a plain ``defaultdict(asyncio.Lock)``, the table does not grow with
    every conversation ever seen.
    """

    def __init__(
        self,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        wait: float = DEFAULT_WAIT,
        renew: bool = True,
    ) -> None:
        super().__init__(lifetime=lifetime, wait=wait, renew=renew)
        self._held: dict[str, _Held] = {}

    async def _acquire(self, lease: Lease) -> None:
        key, token = lease.key, lease.token
        loop = asyncio.get_running_loop()
        end = loop.time() + self.wait
        while True:
            now = loop.time()
            held = self._held.get(key)
            if held is None or held.deadline <= now:
                if held is not None:
                    held.released.set()
                self._held[key] = _Held(token, now + self.lifetime)
                return
            if now >= end:
                raise LockError(f"session {key!r} stayed locked for {self.wait:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(held.released.wait(), min(held.deadline, end) - now)

    async def _release(self, key: str, token: str) -> bool:
        held = self._held.get(key)
        if held is None or held.token != token:
            return False
        del self._held[key]
        held.released.set()
        return held.deadline > asyncio.get_running_loop().time()

    async def _renew(self, key: str, token: str) -> bool:
        held = self._held.get(key)
        now = asyncio.get_running_loop().time()
        if held is None or held.token != token or held.deadline <= now:
            return False
        held.deadline = now + self.lifetime
        return True

    def __len__(self) -> int:
        """How many keys are held right now."""
        return len(self._held)
