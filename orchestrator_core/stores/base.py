"""The session store interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

#: How many of a session's latest saves keep the replies they answered.
ANSWERS_KEPT = 16


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session's serialized form and the version it was stored under."""

    data: str
    version: int


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
      digest changes nothing;
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
        self, key: str, data: str, expected_version: int, *, answer: Answer | None = None
    ) -> int:
        """Store ``data`` if the stored version is ``expected_version``; return the new version."""

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

    async def ping(self) -> None:  # noqa: B027 - optional hook: a memory store is always there
        """Raise ``StoreError`` if the backend cannot be reached."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook: not every backend holds resources
        """Release connections and files. Called once, at shutdown."""
