"""Builds TechAssist's objects from settings; the only place that wires them together."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import Settings, StartupError, source
from orchestrator_core.inner_agent import InnerAgent
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.plans import PlanLibrary, load_plans
from orchestrator_core.session_manager import SessionManager
from orchestrator_core.simulator import NetworkSimulator, SimulatorConfig
from orchestrator_core.stores import MemoryStore, SessionStore, SqliteStore
from orchestrator_core.tools import ToolContext, ToolRegistry, default_registry
from orchestrator_core.workorders import WorkOrderDB

log = logging.getLogger("techassist")


@dataclass
class Services:
    """Everything a running TechAssist holds; ``aclose`` releases it."""

    settings: Settings
    store: SessionStore
    sessions: SessionManager
    workorders: WorkOrderDB
    registry: ToolRegistry
    plans: PlanLibrary
    agent: InnerAgent
    orchestrator: Orchestrator
    closed: bool = field(default=False)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            await self.store.aclose()
            self.workorders.close()


def build_store(settings: Settings) -> SessionStore:
    if settings.store == "memory":
        return MemoryStore()
    return SqliteStore(settings.sessions_path, synchronous=settings.sqlite_synchronous)


def check_data_dir(settings: Settings) -> None:
    """Create the data directory if need be; StartupError if TechAssist cannot write there."""
    data_dir = settings.data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise StartupError(
            f"cannot write to the data directory {data_dir} (TECHASSIST_DATA_DIR, from "
            f"{source('data_dir')}): {exc.strerror or exc}; set TECHASSIST_DATA_DIR to a "
            "directory TechAssist may write to"
        ) from None


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


def open_workorders(settings: Settings) -> WorkOrderDB:
    """Open the work-order database, seeding the demo data into an empty one if enabled."""
    check_data_dir(settings)
    db = WorkOrderDB(settings.workorders_path, synchronous=settings.sqlite_synchronous)
    if settings.seed_demo and db.seed_demo():
        log.info("seeded the demo work orders into %s", settings.workorders_path)
    return db


def build(settings: Settings) -> Services:
    """Build the whole object graph; raises PlanError on an invalid plan, before anything runs."""
    check_plans_dir(settings)
    registry = default_registry()
    plans = load_plans(settings.plans_dir, registry)
    workorders = open_workorders(settings)
    simulator = NetworkSimulator(
        SimulatorConfig(
            latency_ms=settings.sim_latency_ms,
            failures=SimulatorConfig.parse_failures(settings.sim_failures),
            failure_rate=settings.sim_failure_rate,
        )
    )
    agent = InnerAgent(
        registry,
        ToolContext(
            db=workorders, sim=simulator, escalations_per_hour=settings.escalations_per_hour
        ),
        timeout=settings.tool_timeout,
        retries=settings.tool_retries,
    )
    store = build_store(settings)
    sessions = SessionManager(store)
    return Services(
        settings=settings,
        store=store,
        sessions=sessions,
        workorders=workorders,
        registry=registry,
        plans=plans,
        agent=agent,
        orchestrator=Orchestrator(sessions, plans, agent),
    )
