"""An in-process session store: for tests and throwaway runs, lost on exit."""

from __future__ import annotations

import time

from orchestrator_core.errors import StaleVersionError
from orchestrator_core.locks import Lease
from orchestrator_core.stores.base import (
    ANSWERS_KEPT,
    SNAPSHOT_GRACE,
    Answer,
    Retention,
    SessionMeta,
    SessionStore,
    SessionSummary,
    StoredSession,
    Swept,
)


class MemoryStore(SessionStore):
    """Keeps sessions in a dict. Strings are immutable, so loads are copies by construction."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredSession] = {}
        # Per key, the meta of its last save and when it was saved.
        self._meta: dict[str, tuple[SessionMeta, float]] = {}
        # Per key, message id -> (version, replies), oldest first.
        self._answers: dict[str, dict[str, tuple[int, str]]] = {}
        # Digest -> (data, when it was last put).
        self._snapshots: dict[str, tuple[str, float]] = {}
        # CUID -> the keys whose last save carried it.
        self._by_cuid: dict[str, set[str]] = {}

    async def load(self, key: str) -> StoredSession | None:
        return self._rows.get(key)

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
        current = self._rows.get(key)
        actual = current.version if current else 0
        if actual != expected_version:
            raise StaleVersionError(key, expected_version, actual if current else None)
        version = expected_version + 1
        self._rows[key] = StoredSession(data, version)
        self._unindex(key)
        self._meta[key] = (meta, time.time())
        if meta.cuid is not None:
            self._by_cuid.setdefault(meta.cuid, set()).add(key)
        if snapshot is not None and meta.plan_digest is not None:
            self._put(meta.plan_digest, snapshot)
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

    def _unindex(self, key: str) -> None:
        """Take ``key`` off the index of the CUID its last save carried."""
        kept = self._meta.get(key)
        cuid = kept[0].cuid if kept else None
        if cuid is None:
            return
        keys = self._by_cuid.get(cuid, set())
        keys.discard(key)
        if not keys:
            self._by_cuid.pop(cuid, None)

    async def delete(self, key: str) -> None:
        self._unindex(key)
        self._rows.pop(key, None)
        self._meta.pop(key, None)
        self._answers.pop(key, None)

    async def put_snapshot(self, digest: str, data: str) -> None:
        self._put(digest, data)

    def _put(self, digest: str, data: str) -> None:
        kept = self._snapshots.get(digest)
        self._snapshots[digest] = (kept[0] if kept else data, time.time())

    async def get_snapshot(self, digest: str) -> str | None:
        kept = self._snapshots.get(digest)
        return kept[0] if kept else None

    async def scan(self, *, limit: int = 1000) -> list[SessionSummary]:
        newest = sorted(self._meta.items(), key=lambda item: item[1][1], reverse=True)[:limit]
        return [
            SessionSummary(key, self._rows[key].data, self._rows[key].version, saved)
            for key, (_, saved) in newest
        ]

    async def sessions_of(self, cuid: str, *, limit: int = 50) -> list[SessionSummary]:
        found = [
            SessionSummary(key, self._rows[key].data, self._rows[key].version, self._meta[key][1])
            for key in self._by_cuid.get(cuid, ())
        ]
        found.sort(key=lambda summary: summary.saved_at, reverse=True)
        return found[: max(limit, 0)]

    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        due = [
            (meta.remind_at, key)
            for key, (meta, _) in self._meta.items()
            if meta.remind_at is not None and meta.remind_at <= now
        ]
        return [key for _, key in sorted(due)[:limit]]

    async def sweep(self, retention: Retention, now: float) -> Swept:
        expired = [
            key
            for key, (meta, saved) in self._meta.items()
            if saved <= now - retention.ttl(meta.state)
        ]
        for key in expired:
            await self.delete(key)
        used = {meta.plan_digest for meta, _ in self._meta.values()}
        unused = [
            digest
            for digest, (_, put) in self._snapshots.items()
            if digest not in used and put <= now - SNAPSHOT_GRACE
        ]
        for digest in unused:
            del self._snapshots[digest]
        return Swept(sessions=len(expired), snapshots=len(unused))
