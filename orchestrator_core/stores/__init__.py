"""Session stores: one small interface, several backends with one behaviour."""

from __future__ import annotations

from orchestrator_core.stores.base import SessionStore, StoredSession
from orchestrator_core.stores.memory import MemoryStore
from orchestrator_core.stores.sqlite import SqliteStore

__all__ = ["MemoryStore", "SessionStore", "SqliteStore", "StoredSession"]
