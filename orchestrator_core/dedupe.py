"""Processed ids, so a redelivered event is acted on once: ``Seen.first``.

A bridge asks ``first(id, ttl)`` before it acts on something that may come
again (a Slack event id, a message's channel and ``ts``, a button click). The
answer is True exactly once per id within ``ttl`` seconds. The backend comes
from the same factory as the session store and its lock: in-process beside
the memory and SQLite stores, on Redis (``SET NX PX``, in ``stores.redis``)
beside the Redis store, so a redelivery that lands on another instance is
still recognised there.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

#: Ids an in-process ``MemorySeen`` keeps at most; the oldest go first.
MEMORY_LIMIT = 10_000


class Seen(Protocol):
    """Remembers ids for a while; shared by every instance when its backend is."""

    async def first(self, id: str, ttl: float, *, also: Sequence[str] = ()) -> bool:
        """True if neither ``id`` nor any of ``also`` was seen in the last ``ttl`` seconds.

        Records them all either way, in one atomic step, so of several callers
        racing with the same id exactly one gets True. Raises ``StoreError`` if
        the backend cannot answer.
        """
        ...


class MemorySeen:
    """Ids seen by this process: at most ``limit`` of them, each for its ``ttl``."""

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    async def first(self, id: str, ttl: float, *, also: Sequence[str] = ()) -> bool:
        now = time.monotonic()
        ids = (id, *also)
        new = True
        for i in ids:
            until = self._until.get(i)
            if until is not None and until > now:
                new = False
        for i in ids:
            self._until[i] = now + ttl
            self._until.move_to_end(i)
        while len(self._until) > self._limit:
            self._until.popitem(last=False)
        return new
