"""Which connection owns a technician's CUID, across instances on a PostgreSQL store.

``PostgresOwners`` is the ``Owners`` that goes with ``PostgresStore``, for
operators who run no Redis: an owner row per CUID fences the takeover, and
``LISTEN/NOTIFY`` carries the claims to every instance on the same database.
The table comes from ``migrations/003_owners.sql`` (``techassist db upgrade``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

from orchestrator_core.errors import StoreError
from orchestrator_core.owners import Taken
from orchestrator_core.pg.sessions import DB_ERRORS, PostgresPool, reason, store_error

log = logging.getLogger("techassist.postgres")

#: The channel claims are announced on; a database's notifications stay in it.
CHANNEL = "techassist_takeover"
#: Seconds the takeover listener waits before listening again after PostgreSQL failed.
RELISTEN_PAUSE = 1.0

_CLAIM = (
    "INSERT INTO connection_owners (cuid, token, claimed_at) VALUES (%s, %s, now())"
    " ON CONFLICT (cuid) DO UPDATE SET token = EXCLUDED.token, claimed_at = EXCLUDED.claimed_at"
)


class PostgresOwners:
    """The owner of each CUID as a row, announced with ``NOTIFY`` on one channel.

    ``claim`` upserts ``connection_owners`` with the connection's token and
    sends ``<token> <cuid>`` on ``CHANNEL``, in one transaction: the
    notification goes out only when the row is committed. ``watch`` listens on
    a connection of its own (a pooled one would be handed back, and its
    ``LISTEN`` with it) and hands each notification on with the owner row as
    it reads it then, not the announced token: a notification that arrives
    late, after a newer claim, names the newer owner, so the newer connection
    is never closed by it. ``release`` deletes the row only while it still
    holds the releasing token; a row an instance left behind by crashing is
    overwritten by the next claim.
    """

    shared = True

    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    async def claim(self, cuid: str, token: str) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(_CLAIM, (cuid, token))
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{token} {cuid}"))
        except DB_ERRORS as exc:
            raise store_error("cannot record the owner of a connection", exc) from exc

    async def release(self, cuid: str, token: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM connection_owners WHERE cuid = %s AND token = %s", (cuid, token)
                )
        except DB_ERRORS as exc:
            raise store_error("cannot release the owner of a connection", exc) from exc

    async def owner(self, cuid: str) -> str | None:
        """The token of the connection that holds ``cuid`` now, if any."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT token FROM connection_owners WHERE cuid = %s", (cuid,)
                )
                row = await cur.fetchone()
        except DB_ERRORS as exc:
            raise store_error("cannot read the owner of a connection", exc) from exc
        return None if row is None else str(row[0])

    async def watch(self, taken: Taken) -> None:
        while True:
            try:
                await self._listen(taken)
            except (*DB_ERRORS, StoreError) as exc:
                # The reason names the server and the failure, never the password.
                log.warning(
                    "the takeover listener lost PostgreSQL (%s); listening again", reason(exc)
                )
                await asyncio.sleep(RELISTEN_PAUSE)

    async def _listen(self, taken: Taken) -> None:
        conn: psycopg.AsyncConnection[Any]
        # TCP keepalives: the listener may sit idle for hours, and a firewall or NAT
        # that drops idle connections would otherwise cut it without a word, stopping
        # takeovers unnoticed. With these a dead peer is found in about a minute.
        async with await psycopg.AsyncConnection.connect(
            self.pool.conninfo,
            autocommit=True,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        ) as conn:
            await conn.execute(f"LISTEN {CHANNEL}".encode())
            # The generator holds this connection while it waits, so the owner is
            # read through the pool.
            async for notify in conn.notifies():
                _, _, cuid = notify.payload.partition(" ")
                owner = await self.owner(cuid) if cuid else None
                if owner is not None:
                    await taken(cuid, owner)
