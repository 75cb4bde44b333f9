"""Which connection owns a technician's CUID, across instances: ``Owners``.

A bridge that holds one live connection per technician (the legacy websocket)
calls ``claim(cuid, token)`` when a connection takes a CUID and
``release(cuid, token)`` when it ends; ``watch(taken)`` runs once per process
and calls ``taken(cuid, owner, fence)`` whenever any instance claims a CUID,
so the instance holding an older connection closes it.

Each claim gets a fence, a number larger than every earlier claim's, which
``claim`` returns and the announcement carries. Which of two connections is
the older is decided by their fences alone: announcements may arrive late or
while a claim is still on its way, so neither the order they arrive in nor the
owner as read at some moment can say it.

The backend comes from the same factory as the session store: in-process
beside the memory and SQLite stores (``LocalOwners``: nothing to tell another
process, the bridge's own table does the takeover), on Redis beside the Redis
store (``stores.redis.RedisOwners``: an owner key and a pub/sub channel), in
PostgreSQL beside the PostgreSQL store (``pg.owners.PostgresOwners``: an owner
row and ``LISTEN/NOTIFY``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

log = logging.getLogger("techassist.owners")

#: Called with a CUID, the token of the connection that claimed it, and that claim's fence.
Taken = Callable[[str, str, int], Awaitable[None]]


class Announcement(NamedTuple):
    """A claim as shared backends announce it: ``<fence> <token> <cuid>``."""

    fence: int
    token: str
    cuid: str

    def __str__(self) -> str:
        return f"{self.fence} {self.token} {self.cuid}"

    @classmethod
    def parse(cls, data: str) -> Announcement | None:
        """The claim ``data`` announces; ``None`` (logged) if it is not an announcement."""
        fence, _, rest = data.partition(" ")
        token, _, cuid = rest.partition(" ")
        if not (fence.isdigit() and token and cuid):
            log.warning("ignored a takeover announcement that is not <fence> <token> <cuid>")
            return None
        return cls(int(fence), token, cuid)


class Owners(Protocol):
    """Records the owner of each CUID and tells every instance when it changes."""

    shared: bool
    """Whether other processes see the claims (and ``watch`` is worth running)."""

    async def claim(self, cuid: str, token: str) -> int:
        """Make ``token`` the owner of ``cuid`` and announce it; return the claim's fence.

        ``StoreError`` if it cannot.
        """
        ...

    async def release(self, cuid: str, token: str) -> None:
        """Forget the owner of ``cuid`` if it is still ``token``; ``StoreError`` if it cannot."""
        ...

    async def watch(self, taken: Taken) -> None:
        """Call ``taken(cuid, owner, fence)`` for every claim announced, until cancelled."""
        ...


class LocalOwners:
    """Owners for a store no other process shares: nothing leaves the process."""

    shared = False

    async def claim(self, cuid: str, token: str) -> int:
        return 0  # no other process claims: the bridge's own table orders the connections

    async def release(self, cuid: str, token: str) -> None:
        return None

    async def watch(self, taken: Taken) -> None:
        await asyncio.Event().wait()
