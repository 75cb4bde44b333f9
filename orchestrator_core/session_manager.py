"""Loads and saves sessions: the orchestrator's only door to the store."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from pydantic import ValidationError

from orchestrator_core.errors import StoreError
from orchestrator_core.locks import LocalLock, SessionLock
from orchestrator_core.session import Session
from orchestrator_core.stores.base import SessionStore
from orchestrator_core.turns import SessionKey


class SessionManager:
    """Turns sessions into stored rows and back, with versions and per-key locks."""

    def __init__(self, store: SessionStore, locks: SessionLock | None = None) -> None:
        self.store = store
        self.locks = locks or LocalLock()

    def lock(self, key: SessionKey) -> AbstractAsyncContextManager[None]:
        """Hold this for a whole turn, so one session's turns never interleave."""
        return self.locks.lock(key.as_str())

    def create_session(self, key: SessionKey) -> Session:
        """Start a new, not yet saved session; the first ``update_session_data`` stores it."""
        return Session(key=key)

    async def get_session_data(self, key: SessionKey) -> Session | None:
        """Load the session for ``key``, or ``None`` when there is none."""
        stored = await self.store.load(key.as_str())
        if stored is None:
            return None
        try:
            session = Session.model_validate_json(stored.data)
        except ValidationError as exc:
            raise StoreError(f"session {key.as_str()!r} is unreadable: {exc}") from exc
        session.version = stored.version
        return session

    async def update_session_data(self, session: Session) -> Session:
        """Save ``session`` if nobody saved it since it was loaded; bump its version.

        Raises ``StaleVersionError`` (a ``StoreError``) when the stored version moved on.
        """
        data = session.model_dump_json()
        session.version = await self.store.save(session.key.as_str(), data, session.version)
        return session
