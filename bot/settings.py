"""Every setting TechAssist reads, in one place.

Each is an environment variable ``TECHASSIST_<NAME>`` (or a line in ``.env``),
except Slack's standard ``SLACK_BOT_TOKEN`` and ``SLACK_APP_TOKEN``. Tests pass
values directly: ``Settings(data_dir=tmp_path)``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plans import PLANS_DIR

ENV_FILE = Path(".env")
"""The optional file of settings, read from the working directory."""


def default_data_dir() -> Path:
    """Where data lives unless told otherwise: under the user's home, never in the repo."""
    return Path.home() / ".local" / "share" / "techassist"


#: URL schemes ``TECHASSIST_STORE`` accepts for a Redis server.
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: URL schemes ``TECHASSIST_STORE`` accepts for a PostgreSQL database.
POSTGRES_SCHEMES = ("postgresql", "postgres")


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
    store: str = "sqlite"
    """Where sessions live: the embedded SQLite file, memory (lost on exit), or a
    ``redis://host:port/db`` or ``postgresql://`` URL shared by several instances."""
    redis_prefix: str = Field(default="techassist:", min_length=1)
    """The prefix of every Redis key TechAssist uses, so several installations share a server."""
    lock_lifetime: float = Field(default=30.0, gt=0)
    """Seconds a session's lease lasts unless its holder renews it (it does, while it runs)."""
    lock_wait: float = Field(default=60.0, ge=0)
    """Seconds a turn waits for a session another turn holds before answering with an apology."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """NORMAL survives a process crash; FULL also survives a power loss, at ~20x the cost."""
    plans_dir: Path = PLANS_DIR
    """The directory of plan JSON files."""
    seed_demo: bool = True
    """Seed the demo work orders into an empty work-order database at start."""
    database_url: SecretStr | None = None
    """Where the work orders and the tool audit live: unset, the SQLite file in ``data_dir``;
    ``postgresql://user@host:5432/db``, a PostgreSQL database (``techassist db upgrade``
    creates its schema). Secret: it may hold a password."""

    tool_timeout: float = Field(default=30.0, gt=0)
    """Seconds one try of a tool may take."""
    tool_retries: int = Field(default=2, ge=0, le=10)
    """Extra tries for transient failures of idempotent tools."""
    tools_file: Path | None = None
    """A YAML or JSON file declaring HTTP tools (plans/tools.schema.json), added to the
    built-in ones; unset, there are only the built-in tools."""
    tools_ca_bundle: Path | None = None
    """A PEM file of the certificate authorities HTTP tools trust instead of the system's."""

    sim_latency_ms: float = Field(default=0.0, ge=0)
    """Latency the network simulator adds to each operation."""
    sim_failures: str = ""
    """Injected transient failures: 'operation:count,...' fails the first count calls."""
    sim_failure_rate: float = Field(default=0.0, ge=0, le=1)
    """A deterministic fraction of simulator calls that fail transiently."""
    sim_seed: int = 0
    """Seeds the simulator's failure choices and the served simulator's faults."""
    sim_host: str = "127.0.0.1"
    """Where ``techassist simulate`` listens."""
    sim_port: int = Field(default=8001, ge=0, le=65535)
    """The port ``techassist simulate`` listens on; 0 picks a free one."""
    sim_faults: str = ""
    """Faults the served simulator injects per endpoint: a JSON object (see the README)."""
    sim_admin_token: SecretStr | None = None
    """The bearer token of the served simulator's admin endpoint; unset: the endpoint is off."""

    secret_key: SecretStr | None = None
    """Fernet key(s), comma-separated, newest first, sealing sensitive values in sessions;
    unset: a key generated into ``data_dir/secret.key``. Never logged."""
    session_ttl_unidentified: float = Field(default=3600.0, gt=0)
    """Seconds a stored session that never identified is kept (only older versions stored any)."""
    session_ttl_ended: float = Field(default=86_400.0, gt=0)
    """Seconds a session is kept after the technician ended it."""
    session_ttl_idle: float = Field(default=30 * 86_400.0, gt=0)
    """Seconds any other session is kept after its last turn."""
    session_sweep_interval: float = Field(default=3600.0, gt=0)
    """Seconds between sweeps of expired sessions; the server also sweeps at start."""
    reminder_after: float = Field(default=1800.0, gt=0)
    """Seconds a technician idle in the middle of an order waits for one reminder."""
    reminder_interval: float = Field(default=5.0, gt=0)
    """Seconds between looks for sessions due a reminder."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    import_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    """The largest file ``techassist orders import`` reads."""

    host: str = "127.0.0.1"
    """Where ``techassist serve`` listens."""
    port: int = Field(default=8000, ge=0, le=65535)
    """The port ``techassist serve`` listens on; 0 picks a free one."""

    public_url: str | None = None
    """The address technicians reach the server at, which sign-in links start with
    (``https://chat.example.com``); unset: ``http://HOST:PORT``."""
    web_typing_after: float = Field(default=0.4, ge=0)
    """Seconds a web chat turn may run before the page is told the assistant is at work."""
    ws_auth: Literal["token", "none"] | None = None
    """Whether websocket clients need a token; unset: none on a loopback host, else token."""
    ws_allowed_origins: str = ""
    """Comma-separated browser origins that may open the websocket (besides the server's own)."""
    token: SecretStr | None = None
    """The token ``techassist client`` and ``client.py`` present to the server."""
    max_connections: int = Field(default=1024, ge=1)
    """Connections held at once, in total; one more is answered 503 at its handshake."""
    max_connections_per_ip: int = Field(default=64, ge=1)
    """Websocket connections from one client address; one more is answered 503."""
    handshake_timeout: float = Field(default=10.0, gt=0)
    """Seconds a new connection has to send its whole request (the websocket handshake)."""
    idle_timeout: float = Field(default=1800.0, gt=0)
    """Seconds a websocket client may send nothing before it is closed (1000); its session stays."""
    messages_per_minute: int = Field(default=120, ge=1)
    """Websocket frames one connection may send per minute; more are answered 'slow down'."""
    identify_failures_per_minute: int = Field(default=10, ge=1)
    """Failed identifications from one client address per minute before it must wait."""
    escalations_per_hour: int = Field(default=20, ge=1)
    """Escalations (an order handed over, or help asked for) per technician per hour."""
    forwarded_allow_ips: str = ""
    """Proxy addresses whose X-Forwarded-For is believed, comma-separated; empty: none."""

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
    slack_dispatch_channel: str | None = None
    """The Slack channel id (C…) where new escalations are posted with a Take button."""

    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )

    @field_validator("ws_auth", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = urlsplit(value.strip())
        if url.scheme.lower() not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://chat.example.com")
        return value.strip().rstrip("/")

    @field_validator("database_url", mode="after")
    @classmethod
    def _postgres(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (unset: the SQLite file)")
        return value

    @field_validator("store", mode="after")
    @classmethod
    def _store(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("sqlite", "memory"):
            return value.lower()
        if urlsplit(value).scheme.lower() in (*REDIS_SCHEMES, *POSTGRES_SCHEMES):
            return value
        raise ValueError("expected sqlite, memory, a redis://host:port/db or a postgresql:// URL")

    @field_validator("slack_dispatch_channel", mode="before")
    @classmethod
    def _channel(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        if not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError(
                "must be a Slack channel id such as C0123ABCD (in Slack: the channel's name, "
                "then the id at the bottom of the About tab), not a channel name"
            )
        return value

    @property
    def shared_store(self) -> bool:
        """Whether sessions live where several instances share them (Redis, PostgreSQL)."""
        return self.store not in ("sqlite", "memory")

    @property
    def postgres_store(self) -> bool:
        """Whether sessions live in PostgreSQL."""
        return urlsplit(self.store).scheme.lower() in POSTGRES_SCHEMES

    @property
    def store_label(self) -> str:
        """The store for logs: a URL without its user name or password."""
        if not self.shared_store:
            return self.store
        url = urlsplit(self.store)
        return f"{url.scheme}://{url.hostname or ''}{f':{url.port}' if url.port else ''}{url.path}"

    @field_validator("sqlite_synchronous", "log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

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


class ClientSettings(BaseSettings):
    """What the terminal client reads: only its token, so no other setting can stop it."""

    model_config = SettingsConfigDict(
        env_prefix="TECHASSIST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    token: SecretStr | None = None


def client_token() -> str | None:
    """``TECHASSIST_TOKEN``, from the environment or ``./.env``; None when unset or empty."""
    try:
        token = ClientSettings().token
    except ValidationError:
        return None
    return token.get_secret_value() or None if token is not None else None


class StartupError(Exception):
    """A setting or the machine stops TechAssist from starting; the message says what to do."""


SECRET = frozenset({"slack_bot_token", "slack_app_token"})
#: Settings whose value is never shown, in errors or logs.
HIDDEN = SECRET | {"secret_key", "sim_admin_token"}


def env_name(field: str) -> str:
    """The variable a setting is read from: ``TECHASSIST_<NAME>``, or Slack's own names."""
    return field.upper() if field in SECRET else "TECHASSIST_" + field.upper()


KNOWN = {env_name(field): field for field in Settings.model_fields}


def source(field: str, environ: Mapping[str, str] | None = None, env_file: Path = ENV_FILE) -> str:
    """Where a setting's value came from: ``the environment``, ``./.env`` or ``the default``.

    Names are matched regardless of case, as the settings themselves are read.
    """
    name = env_name(field)
    environ = os.environ if environ is None else environ
    if any(key.upper() == name for key in environ):
        return "the environment"
    if any(key.upper() == name for key in _dotenv(env_file)):
        return f"./{env_file}" if not env_file.is_absolute() else str(env_file)
    return "the default"


def _dotenv(env_file: Path) -> dict[str, str | None]:
    try:
        return dotenv_values(env_file) if env_file.is_file() else {}
    except (OSError, UnicodeDecodeError):
        return {}


def unknown_variables(
    environ: Mapping[str, str] | None = None, env_file: Path = ENV_FILE
) -> list[str]:
    """A warning for each ``TECHASSIST_*`` variable that is no setting, with the closest one."""
    environ = os.environ if environ is None else environ
    found = [(key, "the environment") for key in environ]
    found += [(key, f"./{env_file}") for key in _dotenv(env_file)]
    warnings = []
    for key, where in found:
        name = key.upper()
        if not name.startswith("TECHASSIST_") or name in KNOWN:
            continue
        close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else "; the README lists the settings"
        warnings.append(f"{key} (in {where}) is not a TechAssist setting and is ignored{hint}")
    return warnings


def slack_warning(settings: Settings) -> str | None:
    """Why Slack stays off although one of its two tokens is set; never shows a token."""
    bot, app = settings.slack_bot_token, settings.slack_app_token
    if bot is None and app is None and settings.slack_dispatch_channel is not None:
        return (
            "TECHASSIST_SLACK_DISPATCH_CHANNEL is set but Slack is off, so escalations are "
            "posted nowhere: set SLACK_BOT_TOKEN and SLACK_APP_TOKEN to connect to Slack"
        )
    if (bot is None) == (app is None):
        return None
    given, missing = (
        ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
        if app is None
        else (
            "SLACK_APP_TOKEN",
            "SLACK_BOT_TOKEN",
        )
    )
    return f"{given} is set but {missing} is not, so Slack is off: set both to connect to Slack"


def load_settings() -> Settings:
    """The settings from the environment and ``./.env``; a bad value raises StartupError.

    The message has one line per bad value: the variable, its value (never a token's),
    where it came from and what to do.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            key = str(error["loc"][0]) if error["loc"] else ""
            field = KNOWN.get(key.upper(), key.lower())
            name = env_name(field)
            value = error["input"]
            if field == "store" and isinstance(value, str) and "@" in value:
                value = "…@" + value.rsplit("@", 1)[1]  # a URL's user and password stay out
            shown = name if field in HIDDEN else f"{name}={value!r}"
            info = Settings.model_fields.get(field)
            default = info.get_default(call_default_factory=True) if info else None
            fix = f"unset it to use the default ({default})" if default is not None else "unset it"
            lines.append(
                f"{shown} (from {source(field)}) is invalid: {error['msg']}; correct it or {fix}"
            )
        raise StartupError("\n".join(lines)) from None
