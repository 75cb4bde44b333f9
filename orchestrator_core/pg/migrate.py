"""The schema's versioned migrations: ``migrations/NNN_name.sql``, applied in order, once.

``schema_version`` records each applied version. Each migration runs in its own
transaction with its version row, under an advisory lock held for the upgrade,
so two instances upgrading at once apply each migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from orchestrator_core.errors import WorkOrderError

MIGRATIONS = Path(__file__).with_name("migrations")
_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
#: An arbitrary constant naming the advisory lock that serialises upgrades.
_LOCK = 0x7EC4A551


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(directory: Path = MIGRATIONS) -> list[Migration]:
    """The migrations in ``directory``, by version."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.fullmatch(path.name)
        if match is None:
            raise WorkOrderError(f"migration file {path.name} is not named NNN_name.sql")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    return found


def latest() -> int:
    """The version the code expects the database to be at."""
    return max(m.version for m in migrations())


async def current(conn: psycopg.AsyncConnection[Any]) -> int:
    """The version a database is at; 0 for one never upgraded."""
    cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
    row = await cur.fetchone()
    if row is None or not row[0]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def upgrade(conninfo: str, to: int | None = None) -> list[str]:
    """Apply every migration the database lacks, up to version ``to`` (all of them by
    default); the names of those applied."""
    applied: list[str] = []
    try:
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                    " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                at = await current(conn)
                for migration in migrations():
                    if migration.version <= at:
                        continue
                    if to is not None and migration.version > to:
                        break
                    async with conn.transaction():
                        await conn.execute(migration.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_version (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name),
                        )
                    applied.append(migration.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))
    except psycopg.Error as exc:
        raise WorkOrderError(f"cannot upgrade the database: {_first_line(exc)}") from exc
    return applied


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
