"""The session store interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A session's serialized form and the version it was stored under."""

    data: str
    version: int


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
    - backend errors surface as ``StoreError``.
    """

    @abstractmethod
    async def load(self, key: str) -> StoredSession | None:
        """Return the stored session for ``key``, or ``None``."""

    @abstractmethod
    async def save(self, key: str, data: str, expected_version: int) -> int:
        """Store ``data`` if the stored version is ``expected_version``; return the new version."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key``; deleting an unknown key is not an error."""

    async def ping(self) -> None:  # noqa: B027 - optional hook: a memory store is always there
        """Raise ``StoreError`` if the backend cannot be reached."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook: not every backend holds resources
        """Release connections and files. Called once, at shutdown."""
