"""psycopg's async connection pool, made to fail fast while PostgreSQL is down and to recover.

Left to its defaults, the pool behaves badly around a restart of the server:

- every call made while the server is down waits the whole ``timeout`` (10 s)
  for a connection that cannot come, so a technician waits that long, per
  query, to be told to try again;
- the connections idle in the pool when the server went away are found dead
  only when a call uses them, so each fails one more call after the server is
  back;
- a lost connection is replaced with a backoff that doubles without bound
  (1, 2, 4 … s) for five minutes, so the pool may come back long after the
  server did.

``Pool`` remembers that the server could not be reached (a connection broke,
or none came in time). Until a call succeeds again, a call waits at most
``DOWN_WAIT`` for a connection. When it notices, it checks the idle
connections in the background (``AsyncConnectionPool.check``), dropping the
dead ones. And replacing a lost connection gives up after ``RECONNECT_WINDOW``,
so the next call asks for a new one at once instead of waiting for a backoff
that outgrew the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

log = logging.getLogger("techassist.pg")

#: Seconds a call waits for a connection while the server is known to be unreachable.
DOWN_WAIT = 1.0
#: Seconds the pool keeps trying to replace a lost connection before it leaves it to the next call.
RECONNECT_WINDOW = 5.0


#: SQLSTATEs of a server that went away or is not up yet: connection exceptions (class 08),
#: shut down by an administrator or a crash, starting up.
_GONE = ("57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Whether a psycopg error says the server could not be reached, rather than that it
    refused a statement (a deadlock or a timeout is an ``OperationalError`` too)."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate  # None: raised by the client, e.g. connection refused or lost
    return state is None or state.startswith("08") or state in _GONE


class Pool(AsyncConnectionPool[Any]):
    """An ``AsyncConnectionPool`` that fails fast while the server is down (see the module)."""

    def __init__(self, conninfo: str, **options: Any) -> None:
        options.setdefault("reconnect_timeout", RECONNECT_WINDOW)
        super().__init__(conninfo, **options)
        self.unreachable = False
        self._checking: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        if timeout is None and self.unreachable:
            timeout = DOWN_WAIT
        try:
            async with super().connection(timeout) as conn:
                yield conn
        except psycopg.OperationalError as exc:  # PoolTimeout is one too
            if unreachable(exc):
                self._lost()
            raise
        if self.unreachable:
            self.unreachable = False
            log.info("the database answers again")

    def _lost(self) -> None:
        """The server could not be reached: fail fast, and drop the other dead connections."""
        if not self.unreachable:
            log.warning("the database cannot be reached; calls fail fast until it answers")
        self.unreachable = True
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check_idle())

    async def _check_idle(self) -> None:
        try:
            await self.check()
        except Exception as exc:  # a closed pool; nothing to check
            log.debug("checking the pooled connections failed: %s", exc)

    async def close(self, timeout: float = 5.0) -> None:
        if self._checking is not None:
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checking
        await super().close(timeout)
