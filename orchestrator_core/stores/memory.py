"""An in-process session store: for tests and throwaway runs, lost on exit."""

from __future__ import annotations

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.stores.base import ANSWERS_KEPT, Answer, SessionStore, StoredSession


class MemoryStore(SessionStore):
    """Keeps sessions in a dict. Strings are immutable, so loads are copies by construction."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredSession] = {}
        # Per key, message id -> (version, replies), oldest first.
        self._answers: dict[str, dict[str, tuple[int, str]]] = {}
        self._snapshots: dict[str, str] = {}

    async def load(self, key: str) -> StoredSession | None:
        return self._rows.get(key)

    async def save(
        self, key: str, data: str, expected_version: int, *, answer: Answer | None = None
    ) -> int:
        current = self._rows.get(key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise StaleVersionError(key, expected_version, actual if current else None)
        version = expected_version + 1
        self._rows[key] = StoredSession(data, version)
        if answer is not None:
            answers = self._answers.setdefault(key, {})
            answers.pop(answer.message_id, None)
            answers[answer.message_id] = (version, answer.replies)
            while next(iter(answers.values()))[0] <= version - ANSWERS_KEPT:
                del answers[next(iter(answers))]
        return version

    async def answered(self, key: str, message_id: str) -> str | None:
        found = self._answers.get(key, {}).get(message_id)
        return found[1] if found else None

    async def delete(self, key: str) -> None:
        self._rows.pop(key, None)
        self._answers.pop(key, None)

    async def put_snapshot(self, digest: str, data: str) -> None:
        self._snapshots.setdefault(digest, data)

    async def get_snapshot(self, digest: str) -> str | None:
        return self._snapshots.get(digest)
