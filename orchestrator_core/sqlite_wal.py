"""SQLite in WAL mode with checkpoints off the event loop.

A WAL checkpoint copies committed pages back into the database file and, with
``synchronous=NORMAL``, fsyncs it. SQLite runs one automatically inside the
commit that crosses ``wal_autocheckpoint`` pages, so every few hundred turns
one turn would pay several milliseconds for it. Here a background thread,
on its own connection, runs passive checkpoints (they never block writers)
every second, and the automatic threshold is raised to a safety net.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
    private_file(path)
    # isolation_level=None: autocommit; transactions are explicit where needed.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # Deleted and overwritten content is zeroed, not left in free pages.
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    return conn


def private_file(path: Path) -> None:
    """Make ``path`` readable by its owner only (0600), creating it empty if need be.

    SQLite gives a database's ``-wal`` and ``-shm`` files the database file's mode,
    so creating the database 0600 keeps all three private; ones left wider by an
    earlier version are narrowed.
    """
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # absent, or not ours to change
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)


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
