"""Every setting TechAssist reads, in one place.

Each is an environment variable ``TECHASSIST_<NAME>`` (or a line in ``.env``),
except Slack's standard ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN``. Tests pass
values directly: ``Settings(data_dir=tmp_path)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plans import PLANS_DIR


def default_data_dir() -> Path:
    """Where data lives unless told otherwise: under the user's home, never in the repo."""
    return Path.home() / ".local" / "share" / "techassist"


class Settings(BaseSettings):
    """TechAssist's configuration; see the README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix="TECHASSIST_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    """Holds the session store and the work-order database."""
    store: Literal["sqlite", "memory"] = "sqlite"
    """Where sessions live: the embedded SQLite file, or memory (lost on exit)."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives a process crash; FULL also survives a power loss, at ~20x the cost."""
    plans_dir: Path = PLANS_DIR
    """The directory of plan JSON files."""
    seed_demo: bool = True
    """Seed the demo work orders into an empty work-order database at start."""

    tool_timeout: float = Field(default=30.0, gt=0)
    """Seconds one try of a tool may take."""
    tool_retries: int = Field(default=2, ge=0, le=10)
    """Extra tries for transient failures of idempotent tools."""

    sim_latency_ms: float = Field(default=0.0, ge=0)
    """Latency the network simulator adds to each operation."""
    sim_failures: str = ""
    """Injected transient failures: 'operation:count,...' fails the first count calls."""
    sim_failure_rate: float = Field(default=0.0, ge=0, le=1)
    """A deterministic fraction of simulator calls that fail transiently."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    host: str = "127.0.0.1"
    """Where ``techassist serve`` listens."""
    port: int = Field(default=8000, ge=0, le=65535)
    """The port ``techassist serve`` listens on; 0 picks a free one."""

    slack_api_url: str | None = None
    """Overrides the Slack Web API base URL (for tests and proxies)."""
    slack_self_identify: bool = False
    """Ask a Slack user who maps to no technician for a CUID, instead of refusing them."""
    slack_progress_after: float = Field(default=1.0, ge=0)
    """Seconds a Slack turn may run before a progress line is posted."""
    slack_ping_interval: float = Field(default=10.0, gt=0)
    """Seconds between Socket Mode pings; a dead socket is noticed after about this long."""
    slack_rebuild_after: float = Field(default=30.0, gt=0)
    """Seconds disconnected from Slack after which the Socket Mode handler is rebuilt."""

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )

    @field_validator("data_dir", "plans_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def sessions_path(self) -> Path:
        return self.data_dir / "sessions.db"

    @property
    def workorders_path(self) -> Path:
        return self.data_dir / "workorders.db"
