"""An in-process session store: for tests and throwaway runs, lost on exit."""

from __future__ import annotations

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.stores.base import SessionStore, StoredSession


class MemoryStore(SessionStore):
    """Keeps sessions in a dict. Strings are immutable, so loads are copies by construction."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredSession] = {}

    async def load(self, key: str) -> StoredSession | None:
        return self._rows.get(key)

    async def save(self, key: str, data: str, expected_version: int) -> int:
        current = self._rows.get(key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise StaleVersionError(key, expected_version, actual if current else None)
        self._rows[key] = StoredSession(data, expected_version + 1)
        return expected_version + 1

    async def delete(self, key: str) -> None:
        self._rows.pop(key, None)
