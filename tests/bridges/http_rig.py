"""The real ``techassist simulate`` and ``techassist serve`` with the demo HTTP tools.

A test module starts each process once (``simulator`` and ``serve_http``) and
resets the simulator between tests through its admin endpoint (``SimAdmin``).
The tools file is a copy of ``plans/demo-http-tools.yaml`` pointed at the
simulator's port, with what the tests need changed (``tools_copy``): a secret
header from the environment, short timeouts, a breaker with a short cool-down,
and ``activate_ont`` declared not idempotent (so a lost answer is not retried).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.bridges.server import Server, running, start

ROOT = Path(__file__).resolve().parents[2]
SIMULATE = ("simulate", "--host", "127.0.0.1", "--port", "0")
SIM_ANNOUNCE = "TechAssist simulator listening on "
ADMIN_TOKEN = "admin-token-for-http-tools"
#: The credential TechAssist sends to the simulator; it must never be written anywhere.
SIM_TOKEN = "sim-bearer-7f3a9c1e5b"
#: A Wi-Fi password the tests enter; a sensitive input, never written anywhere either.
WIFI_PASSWORD = "hunter2-wifi-Zq9"
#: Seconds one try of a declared tool may take: far above an answer, far below a hang.
TOOL_TIMEOUT = 3
#: Failures in a row that open the simulator host's breaker, and its cool-down (seconds).
BREAKER = {"failures": 3, "cooldown": 1}
DEMO_BASE = "http://127.0.0.1:8001"


def tools_copy(directory: Path, base_url: str) -> Path:
    """Write the demo tools file, changed for the tests, to ``directory``; its path."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "plans" / "demo-http-tools.yaml").read_text())
    data.pop("$schema", None)
    data["breaker"] = dict(BREAKER)
    for tool in data["tools"].values():
        tool["url"] = tool["url"].replace(DEMO_BASE, base_url)
        tool["headers"] = {"Accept": "application/json", "Authorization": "Bearer ${SIM_TOKEN}"}
        tool["timeout"] = TOOL_TIMEOUT
    activate = data["tools"]["activate_ont"]
    activate["idempotent"] = False  # an activation's lost answer must not be sent again blindly
    activate.pop("retry")
    path = directory / "http-tools.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextmanager
def simulator(directory: Path) -> Iterator[Server]:
    """``techassist simulate`` on a free port, with its admin endpoint on, logging at DEBUG."""
    with running(
        directory,
        SIMULATE,
        SIM_ANNOUNCE,
        TECHASSIST_SIM_ADMIN_TOKEN=ADMIN_TOKEN,
        TECHASSIST_SIM_SEED="11",
        TECHASSIST_LOG_LEVEL="DEBUG",
    ) as server:
        yield server


def start_serve(directory: Path, sim: Server, **env: str) -> Server:
    """``techassist serve`` with the tools copy against ``sim``, logging at DEBUG."""
    tools = tools_copy(directory, sim.http)
    return start(
        directory,
        TECHASSIST_TOOLS_FILE=str(tools),
        SIM_TOKEN=SIM_TOKEN,
        TECHASSIST_LOG_LEVEL="DEBUG",
        **env,
    )


@contextmanager
def serve_http(directory: Path, sim: Server, **env: str) -> Iterator[Server]:
    """``start_serve``, stopped on leaving."""
    server = start_serve(directory, sim, **env)
    try:
        yield server
    finally:
        server.stop()


class SimAdmin:
    """The simulator's admin endpoint: its counts, its faults, a reset."""

    def __init__(self, sim: Server) -> None:
        self.client = httpx.Client(
            base_url=sim.http,
            timeout=10.0,
            trust_env=False,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )

    def reset(self) -> None:
        self.client.post("/admin/reset").raise_for_status()

    def faults(self, table: dict[str, Any]) -> None:
        self.client.put("/admin/faults", json=table).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer = self.client.get("/admin/stats")
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def requests(self, operation: str) -> int:
        return int(self.stats()["requests"].get(operation, 0))

    def effects(self, operation: str) -> int:
        return int(self.stats()["effects"].get(operation, 0))

    def activate_elsewhere(self, serial: str, order_id: str) -> None:
        """Another system activates ``serial`` on ``order_id``: the serial is then in use."""
        answer = self.client.post(
            "/onts/activate",
            json={"order_id": order_id, "fsan": serial, "model": "G-240W-F", "ethernet_port": 1},
        )
        answer.raise_for_status()

    def close(self) -> None:
        self.client.close()


def audit_rows(data_dir: Path) -> list[dict[str, Any]]:
    """The tool audit of a server with the embedded store, oldest first."""
    connection = sqlite3.connect(data_dir / "workorders.db")
    try:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM audit ORDER BY rowid")]
    finally:
        connection.close()
