"""Shared fixtures: a real TechAssist on a temporary data directory."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from bot.wiring import Services, build


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the commands the tests start, as it reaches them in a terminal.

    A suite started in the background of a non-interactive shell (``make test &``)
    inherits SIGINT ignored, and so would every command it starts: the tests that
    press Ctrl-C would then wait in vain. Python's own handler is not inherited
    across ``exec``, so the commands start with the default again.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never read the developer's TechAssist settings or Slack tokens."""
    for name in list(os.environ):
        if name.startswith("TECHASSIST_") and not name.startswith("TECHASSIST_TEST_"):
            monkeypatch.delenv(name)
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, **overrides)


ServicesFactory = Callable[..., Awaitable[Services]]


@pytest.fixture
async def make_services(tmp_path: Path) -> AsyncIterator[ServicesFactory]:
    """Build TechAssist on ``tmp_path`` (or another data dir); everything built is closed after."""
    built: list[Services] = []

    async def factory(data_dir: Path | None = None, **overrides: Any) -> Services:
        services = await build(make_settings(data_dir or tmp_path, **overrides))
        built.append(services)
        return services

    try:
        yield factory
    finally:
        for services in built:
            await services.aclose()


@pytest.fixture
async def services(make_services: ServicesFactory) -> Services:
    return await make_services()
