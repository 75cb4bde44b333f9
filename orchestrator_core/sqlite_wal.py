"""SQLite in WAL mode with checkpoints off the event loop.

A WAL checkpoint copies committed pages back into the database file and, with
``synchronous=NORMAL``, fsyncs it. SQLite runs one automatically inside the
commit that crosses ``wal_autocheckpoint`` pages, so every few hundred turns
one turn would pay several milliseconds for it. Here a background thread,
on its own connection, runs passive checkpoints (they never block writers)
every second, and the automatic threshold is raised to a safety net.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Literal

log = logging.getLogger("techassist.sqlite")

Synchronous = Literal["NORMAL", "FULL"]

#: Pages after which a commit checkpoints by itself, if the thread fell behind.
AUTOCHECKPOINT_PAGES = 10_000


def connect_wal(path: Path, *, synchronous: Synchronous = "NORMAL") -> sqlite3.Connection:
    """Open ``path`` in WAL mode, autocommitting, usable from the event loop's thread."""
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
    # isolation_level=None: autocommit; transactions are explicit where needed.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    return conn


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` every ``interval`` seconds."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint:{path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path)
        except sqlite3.Error:
            log.exception(
                "cannot open %s for checkpoints; SQLite will checkpoint inline", self.path
            )
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    log.warning("checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._thread.join()
