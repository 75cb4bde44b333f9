"""The session store interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestrator_core.locks import Lease

#: How many of a session's latest saves keep the replies they answered.
ANSWERS_KEPT = 16
#: Seconds a plan snapshot is kept after it was last put (by ``put_snapshot``, or by a save
#: that carried it) even if no session refers to it: one put on its own may be for a
#: session saved later.
SNAPSHOT_GRACE = 3600.0

SessionState = Literal["unidentified", "active", "ended"]
"""How long a stored session is kept: see ``Retention``."""


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What a store knows about a session without reading its data, for ``sweep``.

    ``state``: ``unidentified`` (no technician yet), ``ended`` (the technician
    ended the conversation) or ``active`` (anything else, including paused).
    ``plan_digest``: the plan snapshot the session refers to, if any.
    ``remind_at``: when the session is due a reminder, if ever (``due``).
    ``cuid``: the technician the session belongs to, if known (``sessions_of``).
    """

    state: SessionState = "active"
    plan_digest: str | None = None
    remind_at: float | None = None
    """When the session is due a reminder (seconds since the epoch), for ``due``."""
    cuid: str | None = None
    """The technician's CUID, for ``sessions_of``; ``None`` before they are identified."""


@dataclass(frozen=True, slots=True)
class Retention:
    """Seconds a session is kept after its last save, by its ``SessionMeta.state``.

    ``idle`` applies to active sessions: a conversation nobody touched for that
    long is gone, and the technician starts afresh.
    """

    unidentified: float = 3600.0
    ended: float = 86_400.0
    idle: float = 30 * 86_400.0

    def ttl(self, state: SessionState) -> float:
        return {"unidentified": self.unidentified, "ended": self.ended}.get(state, self.idle)


@dataclass(frozen=True, slots=True)
class Swept:
    """What one ``sweep`` deleted."""

    sessions: int = 0
    snapshots: int = 0


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session's serialized form and the version it was stored under."""

    data: str
    version: int


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A stored session as ``scan`` lists it: its key, serialized form, version and save time."""

    key: str
    data: str
    version: int
    saved_at: float
    """When it was last saved, in seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The replies (JSON text) a save answered, under the message id that asked."""

    message_id: str
    replies: str


class SessionStore(ABC):
    """Keeps serialized sessions by key string, with optimistic versioning.

    ``SessionManager`` is the only caller. It loads once at the start of a turn
    and saves once at the end, under the session's lock. Implementations must
    guarantee that:

    - ``load`` returns ``None`` for an unknown key and a copy otherwise;
    - ``save`` with ``expected_version=0`` creates the session and fails with
      ``StaleVersionError`` if it already exists;
    - ``save`` with ``expected_version=n`` succeeds only if the stored version
      is ``n``, stores version ``n + 1`` and returns it; otherwise it raises
      ``StaleVersionError`` and changes nothing;
    - an ``answer`` given to ``save`` is stored with the session, atomically,
      and ``answered`` finds it for at least the key's next ``ANSWERS_KEPT``
      saves; ``delete`` forgets a key's answers too;
    - snapshots are write-once by digest: a second ``put_snapshot`` of a known
      digest keeps the data and only renews its time;
    - a ``snapshot`` given to ``save`` is kept under ``meta.plan_digest`` as
      ``put_snapshot`` would, atomically with the session: a stale or refused
      save keeps nothing, so a stored session never refers to a missing one;
    - ``sweep`` deletes the sessions (and their answers) whose last save, by
      the ``SessionMeta`` it carried, is older than their ``Retention``, then
      the snapshots no remaining session refers to that were not put within
      ``SNAPSHOT_GRACE`` seconds;
    - ``scan`` lists stored sessions, most recently saved first, at most ``limit``;
    - ``due`` lists the keys whose last save carried a ``meta.remind_at`` at or before
      ``now``, earliest first; it is kept by the save itself (no extra round trip), and
      a deleted or swept session leaves both lists;
    - ``sessions_of`` lists the sessions whose last save carried ``meta.cuid``, most
      recently saved first, from an index the save itself keeps: however many other
      sessions were saved since, a technician's are found; a save with another CUID
      (or none) moves the session out, and a deleted or swept session leaves it;
    - backend errors surface as ``StoreError``.

    Answers and plan snapshots live beside the session rather than in it, so
    the row every turn loads and saves stays small: a session mid-plan is
    about a kilobyte, where it would otherwise carry its plan (4 KB) and the
    replies of its last turns (up to 16 KB).
    """

    @abstractmethod
    async def load(self, key: str) -> StoredSession | None:
        """Return the stored session for ``key``, or ``None``."""

    @abstractmethod
    async def save(
        self,
        key: str,
        data: str,
        expected_version: int,
        *,
        answer: Answer | None = None,
        meta: SessionMeta = SessionMeta(),  # noqa: B008 - frozen, shared safely
        lease: Lease | None = None,
        snapshot: str | None = None,
    ) -> int:
        """Store ``data`` if the stored version is ``expected_version``; return the new version.

        ``meta`` is kept with the row, for ``sweep``. ``snapshot``: the JSON text
        of the plan snapshot ``meta.plan_digest`` names, when this save is the
        first to refer to it; kept write-once with the save, in the same step
        (one round trip on a networked store). ``lease``: the turn's lease
        on ``key``; a store whose server also holds the lease (Redis) refuses the
        save with ``LockError`` if another holder took it, and releases it with
        the save (``Lease.released``). Other stores ignore it.
        """

    @abstractmethod
    async def answered(self, key: str, message_id: str) -> str | None:
        """The replies a recent save of ``key`` stored for ``message_id``, or ``None``."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key``; deleting an unknown key is not an error."""

    @abstractmethod
    async def put_snapshot(self, digest: str, data: str) -> None:
        """Keep ``data`` (a plan, as JSON text) under ``digest``, a hash of exactly that text."""

    @abstractmethod
    async def get_snapshot(self, digest: str) -> str | None:
        """The snapshot kept under ``digest``, or ``None``."""

    @abstractmethod
    async def sweep(self, retention: Retention, now: float) -> Swept:
        """Delete what has expired at ``now`` (seconds since the epoch) under ``retention``.

        Called through ``SessionManager.sweep`` by the server: once at start, then
        periodically (``bot/app.py``). Expired sessions go with their answers; plan
        snapshots no session refers to go too, once past ``SNAPSHOT_GRACE``.
        """

    @abstractmethod
    async def scan(self, *, limit: int = 1000) -> list[SessionSummary]:
        """The stored sessions, most recently saved first, at most ``limit`` of them."""

    @abstractmethod
    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        """The keys of sessions due a reminder at ``now``, earliest first, at most ``limit``."""

    @abstractmethod
    async def sessions_of(self, cuid: str, *, limit: int = 50) -> list[SessionSummary]:
        """The sessions of the technician ``cuid``, most recently saved first, at most ``limit``."""

    async def ping(self) -> None:  # noqa: B027 - optional hook: a memory store is always there
        """Raise ``StoreError`` if the backend cannot be reached."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook: not every backend holds resources
        """Release connections and files. Called once, at shutdown."""
