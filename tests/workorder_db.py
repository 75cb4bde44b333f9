"""The SQLite work orders with their audit and the importer at hand, for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator_core.importer import (
    ImportExpectations,
    ImportSummary,
    import_data,
    import_file,
    seed_demo,
)
from orchestrator_core.sqlite_workorders import SqliteWorkOrders


class WorkOrderDB(SqliteWorkOrders):
    """The SQLite work orders with their audit and the importer at hand."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.audit = self.audit_log()

    async def import_data(
        self, data: dict[str, Any], expect: ImportExpectations | None = None
    ) -> ImportSummary:
        return await import_data(self, data, expect)

    async def import_file(
        self, path: Path, expect: ImportExpectations | None = None
    ) -> ImportSummary:
        return await import_file(self, path, expect)

    async def seed_demo(self) -> bool:
        return await seed_demo(self)
