"""Fixtures of the work-order contract: every backend of ``backends.BACKENDS``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.orchestrator_core.workorders.backends import (
    BACKENDS,
    Handle,
    Opener,
    postgres_backend,
    postgres_url,
    sqlite_backend,
)

__all__ = ["postgres_url"]


@pytest.fixture(params=BACKENDS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens handles on one fresh data set of the backend; several handles share it."""
    if request.param == "sqlite":
        async with sqlite_backend(tmp_path) as open_sqlite:
            yield open_sqlite
    else:
        url: str = request.getfixturevalue("postgres_url")
        async with postgres_backend(url) as open_postgres:
            yield open_postgres


@pytest.fixture
async def db(opener: Opener) -> Handle:
    return await opener()
