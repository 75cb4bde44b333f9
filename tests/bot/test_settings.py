"""Settings: one place, environment variables, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from bot.wiring import build
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from orchestrator_core.stores import SqliteStore

README = Path(__file__).resolve().parents[2] / "README.md"


def env_name(field: str) -> str:
    return (
        field.upper()
        if field.startswith("slack_") and field.endswith("_token")
        else ("TECHASSIST_" + field.upper())
    )


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    missing = [env_name(f) for f in Settings.model_fields if f"`{env_name(f)}`" not in readme]
    assert missing == []


def test_settings_come_from_techassist_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TECHASSIST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TECHASSIST_TOOL_RETRIES", "5")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path and settings.tool_retries == 5
    assert settings.slack_bot_token is not None
    assert "xoxb-secret" not in repr(settings)


def test_a_bad_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHASSIST_TOOL_RETRIES", "many")
    with pytest.raises(ValueError, match="tool_retries"):
        Settings(_env_file=None)


def test_the_default_data_directory_is_under_home_not_the_repository() -> None:
    settings = Settings(_env_file=None)
    assert settings.data_dir.is_relative_to(Path.home())
    assert not settings.data_dir.is_relative_to(README.parent)


@pytest.mark.parametrize(("setting", "pragma"), [("NORMAL", 1), ("FULL", 2)])
async def test_the_synchronous_setting_covers_the_sessions_and_the_work_orders(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    """An operator who asks for FULL durability gets it for the orders closed and the audit
    records as well as for the sessions."""
    services = await build(Settings(data_dir=tmp_path, sqlite_synchronous=setting))
    try:
        assert isinstance(services.store, SqliteStore)
        # PRAGMA synchronous is per connection: ask the connections the services write with.
        assert isinstance(services.workorders, SqliteWorkOrders)
        for connection in (services.store._db, services.workorders._conn):
            assert connection.execute("PRAGMA synchronous").fetchone()[0] == pragma
    finally:
        await services.aclose()


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("TECHASSIST_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("TECHASSIST_SQLITE_SYNCHRONOUS", "full", "sqlite_synchronous", "FULL"),
        ("TECHASSIST_STORE", "SQLite", "store", "sqlite"),
        ("TECHASSIST_STORE", "Memory", "store", "memory"),
    ],
)
def test_a_choice_is_accepted_in_any_case(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(Settings(_env_file=None), field) == expected


def test_an_unknown_choice_is_still_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TECHASSIST_STORE", "redis")
    with pytest.raises(ValueError, match="store"):
        Settings(_env_file=None)
