"""The layers stay clean: the core imports no bridge, web framework, Slack or metrics library, and
only the Slack bridge imports Slack's libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLACK = {"slack_bolt", "slack_sdk"}
WEB = {"fastapi", "starlette", "uvicorn", "websockets", "aiohttp"}
#: Not a bridge: checks the websocket bridges share, importing neither core nor bridge.
SHARED = "bridges.guards"
#: The core reports to an Observer; only bot/ turns that into metrics.
METRICS = {"prometheus_client"}


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("orchestrator_core"), ids=lambda p: p.name)
def test_the_core_imports_no_bridge_web_framework_or_slack_library(path: Path) -> None:
    forbidden = imported_packages(path) & (SLACK | WEB | METRICS | {"bridges", "bot"})
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "path", modules("bot") + modules("bridges") + modules("plans"), ids=lambda p: p.name
)
def test_only_the_slack_bridge_imports_slacks_libraries(path: Path) -> None:
    slack = imported_packages(path) & SLACK
    if path == ROOT / "bridges" / "slack.py":
        assert slack == SLACK  # the check itself would miss a renamed module
    else:
        assert not slack, f"{path.relative_to(ROOT)} imports {sorted(slack)}"


def imported_modules(path: Path) -> set[str]:
    """The dotted names of the modules a module imports from, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", modules("bridges"), ids=lambda p: p.name)
def test_a_bridge_imports_neither_bot_nor_another_bridge(path: Path) -> None:
    """bot builds the bridges; a bridge reaches only the core, its own library, the checks
    the websocket bridges share (``bridges/guards.py``) and, for a bridge that is a package
    (``bridges/web/``), its own package."""
    parts = path.relative_to(ROOT / "bridges").parts
    own = f"bridges.{parts[0]}" if len(parts) > 1 else None
    forbidden = {
        name
        for name in imported_modules(path)
        if name.split(".")[0] in ("bot", "bridges")
        and name != SHARED
        and not (own is not None and (name == own or name.startswith(own + ".")))
    }
    assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


def test_plan_models_load_without_the_tool_runtime() -> None:
    """Loading plans imports neither the tools nor the work-order database."""
    code = (
        "import sys, orchestrator_core.plans, orchestrator_core.orders; "
        "print(sorted(m for m in sys.modules if m.startswith('orchestrator_core.') "
        "or m == 'sqlite3'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    loaded = set(ast.literal_eval(out))
    assert not loaded & {
        "orchestrator_core.tools",
        "orchestrator_core.workorders",
        "orchestrator_core.simulator",
        "sqlite3",
    }, loaded


def test_the_shared_checks_import_no_bridge_and_no_core() -> None:
    path = ROOT / "bridges" / "guards.py"
    assert not imported_packages(path) & ({"bot", "bridges", "orchestrator_core"} | WEB | SLACK)
