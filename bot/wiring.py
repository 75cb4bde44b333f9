"""Builds TechAssist's objects from settings; the only place that wires them together."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.metrics import Metrics
from bot.settings import Settings, StartupError, source
from orchestrator_core.audit import AuditLog
from orchestrator_core.credentials import Credentials
from orchestrator_core.dedupe import MemorySeen, Seen
from orchestrator_core.dispatch import Dispatch
from orchestrator_core.errors import ToolsFileError
from orchestrator_core.importer import seed_demo
from orchestrator_core.inner_agent import InnerAgent
from orchestrator_core.locks import LocalLock, SessionLock
from orchestrator_core.notices import LocalNotifier, Notifier
from orchestrator_core.operators import Operators
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.owners import LocalOwners, Owners
from orchestrator_core.plans import PlanLibrary, load_plans
from orchestrator_core.secrets import FernetSecrets, valid_key
from orchestrator_core.session_manager import SessionManager
from orchestrator_core.simulator import NetworkSimulator, SimulatorConfig
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from orchestrator_core.stores import MemoryStore, SessionStore, SqliteStore
from orchestrator_core.stores.base import Retention
from orchestrator_core.tools import ToolContext, ToolRegistry, default_registry
from orchestrator_core.workorders import WorkOrders

if TYPE_CHECKING:  # imported where used: httpx and YAML cost a third of a second to import
    from orchestrator_core.http_tools import HttpToolRuntime, ToolsFile

log = logging.getLogger("techassist")

#: The generated secret key, in the data directory, when TECHASSIST_SECRET_KEY is unset.
KEY_FILE = "secret.key"
NEW_KEY_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


@dataclass
class Services:
    """Everything a running TechAssist holds; ``aclose`` releases it."""

    settings: Settings
    store: SessionStore
    sessions: SessionManager
    workorders: WorkOrders
    audit: AuditLog
    registry: ToolRegistry
    plans: PlanLibrary
    agent: InnerAgent
    orchestrator: Orchestrator
    credentials: Credentials
    dispatch: Dispatch
    """The escalations queue, live sessions and audit, for the console and Slack's channel."""
    operators: Operators
    """The console's operator accounts."""
    seen: Seen = field(default_factory=MemorySeen)
    """Processed ids (Slack events, messages, clicks), shared as the store is."""
    owners: Owners = field(default_factory=LocalOwners)
    """Which connection holds each technician's CUID, shared as the store is."""
    notifier: Notifier = field(default_factory=LocalNotifier)
    """Tells every instance which sessions have notices waiting, shared as the store is."""
    http_tools: HttpToolRuntime | None = None
    """The runtime of the tools TECHASSIST_TOOLS_FILE declares, if it is set."""
    closed: bool = field(default=False)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            if self.http_tools is not None:
                await self.http_tools.aclose()
            await self.store.aclose()
            await self.audit.aclose()
            await self.workorders.aclose()


def build_store(settings: Settings) -> tuple[SessionStore, SessionLock, Seen, Owners]:
    """The session store, the lock, the processed ids and the connection owners that go
    with it, from one place.

    A store several instances share gets the lock, the processed ids and the
    owners they share too: a Redis or PostgreSQL store never runs with an
    in-process lock, dedupe or websocket takeover. On PostgreSQL the four share
    one pool; the owners' listener holds one more connection of its own.
    """
    lifetime, wait = settings.lock_lifetime, settings.lock_wait
    if settings.postgres_store:
        # The networked backends are imported only when chosen: their clients cost a
        # third of a second to import, paid by every command on the embedded default.
        from orchestrator_core.pg.owners import PostgresOwners
        from orchestrator_core.pg.sessions import (
            PostgresLock,
            PostgresPool,
            PostgresSeen,
            PostgresStore,
        )

        pool = PostgresPool(settings.store)
        lock_ = PostgresLock(pool, lifetime=lifetime, wait=wait)
        return PostgresStore(pool), lock_, PostgresSeen(pool), PostgresOwners(pool)
    if settings.shared_store:
        from orchestrator_core.stores.redis import (
            RedisKeys,
            RedisLock,
            RedisOwners,
            RedisSeen,
            RedisStore,
            connect,
        )

        client = connect(settings.store)
        keys = RedisKeys(settings.redis_prefix)
        store = RedisStore(client, keys=keys, retention=retention(settings))
        lock = RedisLock(client, keys, lifetime=lifetime, wait=wait)
        return store, lock, RedisSeen(client, keys), RedisOwners(client, keys)
    if settings.store == "memory":
        return MemoryStore(), LocalLock(lifetime=lifetime, wait=wait), MemorySeen(), LocalOwners()
    store_ = SqliteStore(settings.sessions_path, synchronous=settings.sqlite_synchronous)
    return store_, LocalLock(lifetime=lifetime, wait=wait), MemorySeen(), LocalOwners()


def build_notifier(settings: Settings, store: SessionStore) -> Notifier:
    """The notifier that goes with ``store`` (``build_store``'s): sessions with notices are
    announced where every instance on the same store hears it.

    Redis pub/sub on the Redis store's client, ``LISTEN/NOTIFY`` on the PostgreSQL
    store's pool (its listener holds one more connection of its own), in-process
    beside the memory and SQLite stores.
    """
    if settings.postgres_store:
        from orchestrator_core.pg.notices import PostgresNotifier
        from orchestrator_core.pg.sessions import PostgresStore

        if isinstance(store, PostgresStore):
            return PostgresNotifier(store.pool)
    elif settings.shared_store:
        from orchestrator_core.stores.redis import RedisNotifier, RedisStore

        if isinstance(store, RedisStore):
            return RedisNotifier(store.client, store.keys)
    return LocalNotifier()


def check_data_dir(settings: Settings) -> None:
    """Create the data directory if need be; StartupError if TechAssist cannot write there."""
    data_dir = settings.data_dir
    try:
        # Created private (0700); a directory that already exists is left as it is.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"cannot write to the data directory {data_dir} (TECHASSIST_DATA_DIR, from "
            f"{source('data_dir')}): {exc.strerror or exc}; set TECHASSIST_DATA_DIR to a "
            "directory TechAssist may write to"
        ) from None


def load_secrets(settings: Settings) -> FernetSecrets | None:
    """The keys that seal sensitive values in stored sessions.

    From TECHASSIST_SECRET_KEY (comma-separated, newest first) when set; otherwise
    from ``secret.key`` in the data directory, generated (0600) the first time. A
    memory store keeps nothing on disk, so without a setting it gets ``None``: the
    session manager then uses a key of its own that lives as long as the process.
    """
    if settings.secret_key is not None:
        keys = [k.strip() for k in settings.secret_key.get_secret_value().split(",") if k.strip()]
        if not keys or not all(valid_key(k) for k in keys):
            raise StartupError(
                f"TECHASSIST_SECRET_KEY (from {source('secret_key')}) is not a list of Fernet "
                f"keys (32 bytes, URL-safe base64, comma-separated); make one with {NEW_KEY_HINT}"
            )
        return FernetSecrets(keys)
    if settings.shared_store:
        raise StartupError(
            f"TECHASSIST_STORE (from {source('store')}) is {settings.store_label}, a store "
            "several instances share, and each must seal sensitive values with the same key: "
            f"set TECHASSIST_SECRET_KEY on every instance (make one with {NEW_KEY_HINT})"
        )
    if settings.store == "memory":
        return None
    check_data_dir(settings)
    path = settings.data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if not valid_key(key):
            raise StartupError(
                f"the secret key file {path} holds no valid Fernet key; restore it, or set "
                f"TECHASSIST_SECRET_KEY (make a key with {NEW_KEY_HINT})"
            ) from None
        return FernetSecrets([key])
    key = FernetSecrets.new_key()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    log.info(
        "TECHASSIST_SECRET_KEY is not set: generated a secret key into %s (mode 0600); "
        "it opens the sensitive values of stored sessions, so keep it with the data",
        path,
    )
    return FernetSecrets([key])


def retention(settings: Settings) -> Retention:
    return Retention(
        unidentified=settings.session_ttl_unidentified,
        ended=settings.session_ttl_ended,
        idle=settings.session_ttl_idle,
    )


def plan_files(plans_dir: Path) -> list[Path]:
    """The plan files in a directory: its ``*.json`` files except the JSON Schema."""
    return sorted(f for f in plans_dir.glob("*.json") if not f.name.endswith(".schema.json"))


def check_plans_dir(settings: Settings) -> None:
    """StartupError unless the plans directory exists and holds plan files."""
    plans_dir = settings.plans_dir
    where = f"TECHASSIST_PLANS_DIR, from {source('plans_dir')}"
    fix = "set TECHASSIST_PLANS_DIR to a directory of plan files, or unset it for the bundled plans"
    if not plans_dir.is_dir():
        problem = "does not exist" if not plans_dir.exists() else "is not a directory"
        raise StartupError(f"the plans directory {plans_dir} ({where}) {problem}; {fix}")
    if not plan_files(plans_dir):
        raise StartupError(f"the plans directory {plans_dir} ({where}) has no plan files; {fix}")


def load_declared_tools(settings: Settings) -> ToolsFile | None:
    """The tools file TECHASSIST_TOOLS_FILE names, checked; None when it is unset."""
    path = settings.tools_file
    if path is None:
        return None
    from orchestrator_core.http_tools import load_tools_file

    try:
        return load_tools_file(path)
    except ToolsFileError as exc:
        raise StartupError(_tools_file_problem(path, exc.problems)) from None


def _tools_file_problem(path: Path, problems: list[str]) -> str:
    where = f"TECHASSIST_TOOLS_FILE, from {source('tools_file')}"
    return "\n".join([f"the tools file {path} ({where}) is invalid:", *problems])


def tool_registry(settings: Settings) -> ToolRegistry:
    """The built-in tools and the declared ones, to check plans against; nothing is started."""
    tools_file = load_declared_tools(settings)
    if tools_file is None:
        return default_registry()
    from orchestrator_core.http_tools import declared_registry

    return declared_registry(default_registry(), tools_file)


def start_http_tools(settings: Settings, registry: ToolRegistry) -> HttpToolRuntime | None:
    """The runtime of the declared tools, registered into ``registry``; None without a file.

    Secret headers are read from the environment now: a missing variable stops the start
    naming it. A declared tool named like a built-in one takes its place.
    """
    tools_file = load_declared_tools(settings)
    if tools_file is None or settings.tools_file is None:
        return None
    path = settings.tools_file
    from orchestrator_core.http_tools import HttpToolRuntime

    try:
        runtime = HttpToolRuntime(
            tools_file, os.environ, ca_bundle=settings.tools_ca_bundle, source=str(path)
        )
        replaced = runtime.register(registry)
    except ToolsFileError as exc:
        raise StartupError(_tools_file_problem(path, exc.problems)) from None
    except OSError as exc:
        raise StartupError(
            f"cannot read the CA bundle {settings.tools_ca_bundle} (TECHASSIST_TOOLS_CA_BUNDLE, "
            f"from {source('tools_ca_bundle')}): {exc.strerror or exc}"
        ) from None
    if replaced:
        log.info("declared HTTP tools replace the built-in %s", ", ".join(replaced))
    return runtime


async def open_workorders(settings: Settings) -> tuple[WorkOrders, AuditLog]:
    """The work orders and the tool audit the settings name, sharing one connection or pool.

    TECHASSIST_DATABASE_URL names a PostgreSQL database (its schema made by
    ``techassist db upgrade``); unset, they share the SQLite file in the data
    directory. The demo data is not seeded here: see ``seed_workorders``.
    """
    if settings.database_url is not None:
        from orchestrator_core.pg.workorders import PostgresWorkOrders

        pg = await PostgresWorkOrders.open(settings.database_url.get_secret_value())
        return pg, pg.audit_log()
    check_data_dir(settings)
    db = SqliteWorkOrders(settings.workorders_path, synchronous=settings.sqlite_synchronous)
    return db, db.audit_log()


async def seed_workorders(settings: Settings, workorders: WorkOrders) -> None:
    """Seed the demo data into empty work orders, when the settings say so."""
    if settings.seed_demo and await seed_demo(workorders):
        where = "the database" if settings.database_url else settings.workorders_path
        log.info("seeded the demo work orders into %s", where)


def simulator_config(settings: Settings) -> SimulatorConfig:
    """The simulator's own misbehaviour, the same in process and served over HTTP."""
    return SimulatorConfig(
        latency_ms=settings.sim_latency_ms,
        failures=SimulatorConfig.parse_failures(settings.sim_failures),
        failure_rate=settings.sim_failure_rate,
        seed=settings.sim_seed,
    )


async def build(settings: Settings) -> Services:
    """Build the whole object graph; raises PlanError on an invalid plan, before anything runs."""
    check_plans_dir(settings)
    registry = default_registry()
    http_tools = start_http_tools(settings, registry)
    plans = load_plans(settings.plans_dir, registry)
    secrets = load_secrets(settings)
    workorders, audit = await open_workorders(settings)
    await seed_workorders(settings, workorders)
    simulator = NetworkSimulator(simulator_config(settings))
    agent = InnerAgent(
        registry,
        ToolContext(
            db=workorders, sim=simulator, escalations_per_hour=settings.escalations_per_hour
        ),
        audit,
        timeout=settings.tool_timeout,
        retries=settings.tool_retries,
        key_secret=None if secrets is None else secrets.derive("idempotency keys"),
    )
    store, locks, seen, owners = build_store(settings)
    sessions = SessionManager(store, locks, secrets=secrets, retention=retention(settings))
    notifier = build_notifier(settings, store)
    orchestrator = Orchestrator(
        sessions,
        plans,
        agent,
        notifier=notifier,
        reminder_after=settings.reminder_after,
    )
    return Services(
        settings=settings,
        store=store,
        sessions=sessions,
        workorders=workorders,
        audit=audit,
        registry=registry,
        plans=plans,
        agent=agent,
        orchestrator=orchestrator,
        credentials=Credentials(workorders),
        # It listens on the orchestrator's escalation hook: the core imports no bridge.
        dispatch=Dispatch(orchestrator, workorders, audit),
        operators=Operators(workorders),
        seen=seen,
        owners=owners,
        notifier=notifier,
        http_tools=http_tools,
    )


def instrument(services: Services) -> Metrics:
    """Give the core's observer points a fresh set of Prometheus metrics, and return it.

    The orchestrator (turns, lock waits, dedupe hits), the inner agent (tool calls)
    and the session manager (stale saves; lost leases, from its lock) all report to it.
    """
    metrics = Metrics()
    services.orchestrator.observer = metrics
    services.agent.observer = metrics
    services.sessions.observer = metrics
    return metrics
