"""Which connection owns a technician's CUID, across instances: ``Owners``.

A bridge that holds one live connection per technician (the legacy websocket)
calls ``claim(cuid, token)`` when a connection takes a CUID and
``release(cuid, token)`` when it ends; ``watch(taken)`` runs once per process
and calls ``taken(cuid, owner)`` with the current owner's token whenever any
instance claims a CUID, so the instance holding an older connection closes it.

The backend comes from the same factory as the session store: in-process
beside the memory and SQLite stores (``LocalOwners``: nothing to tell another
process, the bridge's own table does the takeover), on Redis beside the Redis
store (``stores.redis.RedisOwners``: an owner key and a pub/sub channel), in
PostgreSQL beside the PostgreSQL store (``pg.owners.PostgresOwners``: an owner
row and ``LISTEN/NOTIFY``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

#: Called with a CUID and the token of the connection that owns it now.
Taken = Callable[[str, str], Awaitable[None]]


class Owners(Protocol):
    """Records the owner of each CUID and tells every instance when it changes."""

    shared: bool
    """Whether other processes see the claims (and ``watch`` is worth running)."""

    async def claim(self, cuid: str, token: str) -> None:
        """Make ``token`` the owner of ``cuid`` and announce it; ``StoreError`` if it cannot."""
        ...

    async def release(self, cuid: str, token: str) -> None:
        """Forget the owner of ``cuid`` if it is still ``token``; ``StoreError`` if it cannot."""
        ...

    async def watch(self, taken: Taken) -> None:
        """Call ``taken(cuid, owner)`` for every claim announced, until cancelled."""
        ...


class LocalOwners:
    """Owners for a store no other process shares: nothing leaves the process."""

    shared = False

    async def claim(self, cuid: str, token: str) -> None:
        return None

    async def release(self, cuid: str, token: str) -> None:
        return None

    async def watch(self, taken: Taken) -> None:
        await asyncio.Event().wait()
