"""Declared HTTP tools from the operator's side: settings, start, and the techassist commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import StartupError
from tests.bot.live import techassist
from tests.conftest import ServicesFactory
from tests.orchestrator_core.http_tools.api import TOKEN, ApiState, serve
from tests.own_servers import free_port


def tools_file(path: Path, base: str) -> Path:
    """A tools file with one tool against ``base``, its token from PROVISIONING_TOKEN."""
    declared = {
        "tools": {
            "provision_ont": {
                "description": "Activate the ONT in the provisioning system.",
                "method": "POST",
                "url": f"{base}/onts/{{fsan}}/activate",
                "inputs": {"fsan": {"type": "string"}, "ethernet_port": {"type": "integer"}},
                "headers": {"Authorization": "Bearer ${PROVISIONING_TOKEN}"},
                "body": {"port": "{ethernet_port}"},
                "outputs": {"activation_id": "/activation/id"},
                "idempotency_key": "Idempotency-Key",
            }
        }
    }
    path.write_text(json.dumps(declared))
    return path


def plan_file(directory: Path) -> Path:
    """A plan whose one step runs the declared tool, named like a built-in one."""
    directory.mkdir(exist_ok=True)
    plan = {
        "id": "provisioning",
        "title": "Provision over HTTP",
        "order_types": ["installation"],
        "parameters": {
            "fsan": {"prompt": "The ONT's serial?"},
            "ethernet_port": {"prompt": "Which port?", "type": "integer"},
        },
        "steps": [
            {
                "id": "provision",
                "task": "Activate the ONT",
                "tool": "provision_ont",
                "parameters": ["fsan", "ethernet_port"],
                "outputs": {"activation_id": "activation_id"},
            }
        ],
    }
    path = directory / "provisioning.json"
    path.write_text(json.dumps(plan))
    return path


@pytest.fixture(scope="module")
def api_base() -> Iterator[str]:
    with serve(ApiState()) as base:
        yield base


def test_plans_validate_checks_plans_against_the_declared_tools_too(tmp_path: Path) -> None:
    plan = plan_file(tmp_path / "plans")
    without = techassist(tmp_path, "plans", "validate", str(plan))
    assert without.returncode == 1 and "unknown tool 'provision_ont'" in without.stderr
    tools = tools_file(tmp_path / "tools.json", "https://provisioning.example")
    done = techassist(tmp_path, "plans", "validate", str(plan), TECHASSIST_TOOLS_FILE=str(tools))
    assert done.returncode == 0, done.stderr
    assert "1 plan file(s) valid" in done.stdout


def test_a_typo_in_the_tools_file_stops_the_commands_with_its_json_path(tmp_path: Path) -> None:
    tools = tools_file(tmp_path / "tools.json", "https://provisioning.example")
    text = tools.read_text().replace('"integer"', '"integr"')
    tools.write_text(text)
    done = techassist(tmp_path, "tools", "list", TECHASSIST_TOOLS_FILE=str(tools))
    assert done.returncode == 2
    assert "$.tools.provision_ont.inputs.ethernet_port.type" in done.stderr
    assert "TECHASSIST_TOOLS_FILE" in done.stderr


def test_tools_list_shows_built_in_and_declared_tools(tmp_path: Path) -> None:
    tools = tools_file(tmp_path / "tools.json", "https://provisioning.example")
    done = techassist(tmp_path, "tools", "list", TECHASSIST_TOOLS_FILE=str(tools))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    declared = next(line for line in lines if line.startswith("provision_ont "))
    assert "POST https://provisioning.example/onts/{fsan}/activate" in declared
    assert any(line.startswith("get_orders ") and "built-in" in line for line in lines)


def test_tools_check_tells_which_hosts_answer(tmp_path: Path, api_base: str) -> None:
    up = tools_file(tmp_path / "up.json", api_base)
    done = techassist(
        tmp_path, "tools", "check", TECHASSIST_TOOLS_FILE=str(up), PROVISIONING_TOKEN=TOKEN
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok    {api_base}") and "1 host(s) reachable" in done.stdout
    down = tools_file(tmp_path / "down.json", f"http://127.0.0.1:{free_port()}")
    failed = techassist(
        tmp_path, "tools", "check", TECHASSIST_TOOLS_FILE=str(down), PROVISIONING_TOKEN=TOKEN
    )
    assert failed.returncode == 1 and "FAIL" in failed.stdout
    assert "connection refused" in failed.stdout
    assert TOKEN not in done.stdout + done.stderr + failed.stdout + failed.stderr


def test_a_missing_header_variable_stops_the_start_naming_it(tmp_path: Path) -> None:
    tools = tools_file(tmp_path / "tools.json", "https://provisioning.example")
    done = techassist(tmp_path, "tools", "check", TECHASSIST_TOOLS_FILE=str(tools))
    assert done.returncode == 2
    assert "the environment variable PROVISIONING_TOKEN is not set" in done.stderr
    assert "$.tools.provision_ont.headers.Authorization" in done.stderr


async def test_the_server_starts_with_declared_tools_in_its_registry(
    tmp_path: Path, make_services: ServicesFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tools_file(tmp_path / "tools.json", "https://provisioning.example")
    with pytest.raises(StartupError, match="PROVISIONING_TOKEN is not set"):
        await make_services(tools_file=tools)
    monkeypatch.setenv("PROVISIONING_TOKEN", TOKEN)
    services = await make_services(tools_file=tools)
    assert "provision_ont" in services.registry and "get_orders" in services.registry
    assert services.http_tools is not None
