"""Which connection owns a technician's CUID, across instances on a PostgreSQL store.

``PostgresOwners`` is the ``Owners`` that goes with ``PostgresStore``, for
operators who run no Redis: an owner row per CUID fences the takeover, and
``LISTEN/NOTIFY`` carries the claims to every instance on the same database.
The table comes from ``migrations/003_owners.sql`` (``techassist db upgrade``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from orchestrator_core.errors import StoreError
from orchestrator_core.owners import Announcement, Taken
from orchestrator_core.pg.sessions import DB_ERRORS, PostgresPool, reason, store_error

log = logging.getLogger("techassist.postgres")

#: The channel claims are announced on; a database's notifications stay in it.
CHANNEL = "techassist_takeover"
#: Seconds the takeover listener waits before listening again after PostgreSQL failed.
RELISTEN_PAUSE = 1.0

_CLAIM = (
    "INSERT INTO connection_owners (cuid, token, fence, claimed_at)"
    " VALUES (%s, %s, nextval('connection_owner_fences'), now())"
    " ON CONFLICT (cuid) DO UPDATE SET token = EXCLUDED.token, fence = EXCLUDED.fence,"
    " claimed_at = EXCLUDED.claimed_at"
    " RETURNING fence"
)


class PostgresOwners:
    """The owner of each CUID as a row, announced with ``NOTIFY`` on one channel.

    ``claim`` numbers the claim from one sequence (its fence), upserts
    ``connection_owners`` with the connection's token and sends ``<fence>
    <token> <cuid>`` on ``CHANNEL``, in one transaction: the notification goes
    out only when the row is committed. ``watch`` listens on a connection of
    its own (a pooled one would be handed back, and its ``LISTEN`` with it)
    and hands each announcement on as it is: the bridge compares fences to
    keep the newer connection, however late an announcement arrives.
    ``release`` deletes the row only while it still holds the releasing
    token; a row an instance left behind by crashing is overwritten by the
    next claim.
    """

    shared = True

    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    async def claim(self, cuid: str, token: str) -> int:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                row = await (await conn.execute(_CLAIM, (cuid, token))).fetchone()
                assert row is not None  # an upsert with RETURNING gives its row
                announced = Announcement(int(row[0]), token, cuid)
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(announced)))
        except DB_ERRORS as exc:
            raise store_error("cannot record the owner of a connection", exc) from exc
        return announced.fence

    async def release(self, cuid: str, token: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    "DELETE FROM connection_owners WHERE cuid = %s AND token = %s", (cuid, token)
                )
        except DB_ERRORS as exc:
            raise store_error("cannot release the owner of a connection", exc) from exc

    async def watch(self, taken: Taken) -> None:
        async def heard(payload: str) -> None:
            claim = Announcement.parse(payload)
            if claim is not None:
                await taken(claim.cuid, claim.token, claim.fence)

        await listen(self.pool.conninfo, CHANNEL, heard, "takeover")


async def listen(
    conninfo: str, channel: str, heard: Callable[[str], Awaitable[None]], what: str
) -> None:
    """Call ``heard(payload)`` for each notification on ``channel``, until cancelled.

    It listens on a connection of its own (a pooled one would be handed back, and
    its ``LISTEN`` with it). A lost connection is logged (``what`` names the
    listener) and the listening started again after ``RELISTEN_PAUSE``.
    """
    while True:
        try:
            await _listen(conninfo, channel, heard)
        except (*DB_ERRORS, StoreError) as exc:
            # The reason names the server and the failure, never the password.
            log.warning("the %s listener lost PostgreSQL (%s); listening again", what, reason(exc))
            await asyncio.sleep(RELISTEN_PAUSE)


async def _listen(conninfo: str, channel: str, heard: Callable[[str], Awaitable[None]]) -> None:
    conn: psycopg.AsyncConnection[Any]
    # TCP keepalives: the listener may sit idle for hours, and a firewall or NAT
    # that drops idle connections would otherwise cut it without a word, stopping
    # deliveries unnoticed. With these a dead peer is found in about a minute.
    async with await psycopg.AsyncConnection.connect(
        conninfo,
        autocommit=True,
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    ) as conn:
        await conn.execute(f"LISTEN {channel}".encode())
        async for notify in conn.notifies():
            await heard(notify.payload)
