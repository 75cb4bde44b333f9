"""Sessions with notices waiting, announced across instances on a PostgreSQL store.

``PostgresNotifier`` is the ``Notifier`` that goes with ``PostgresStore``:
``NOTIFY`` on one channel with the session key as the payload, and a listener
of its own per instance (``pg.owners.listen``, which listens again after a lost
connection). The notices themselves are in the session row, so a hint sent
while an instance was not listening loses nothing.
"""

from __future__ import annotations

from orchestrator_core.notices import Deliver, hand_on
from orchestrator_core.pg.owners import listen
from orchestrator_core.pg.sessions import DB_ERRORS, PostgresPool, store_error

#: The channel the keys of sessions with notices are announced on.
CHANNEL = "techassist_notices"


class PostgresNotifier:
    """``NOTIFY techassist_notices, '<session key>'``, heard by every instance's ``watch``."""

    shared = True

    def __init__(self, pool: PostgresPool) -> None:
        self.pool = pool

    async def publish(self, key: str) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, key))
        except DB_ERRORS as exc:
            raise store_error("cannot announce a notice", exc) from exc

    async def watch(self, deliver: Deliver) -> None:
        async def heard(key: str) -> None:
            await hand_on(deliver, key)

        await listen(self.pool.conninfo, CHANNEL, heard, "notice")


PgNotifier = PostgresNotifier
"""The name the interface contract gives it."""
