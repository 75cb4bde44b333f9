"""One test API per module, a tools file declaring tools against it, and an inner agent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from orchestrator_core.http_tools import HttpToolRuntime, load_tools_file
from orchestrator_core.inner_agent import InnerAgent
from orchestrator_core.simulator import NetworkSimulator
from orchestrator_core.tools import ToolContext, default_registry
from tests.orchestrator_core.http_tools.api import TOKEN, ApiState, serve
from tests.workorder_db import WorkOrderDB

#: Tools against the test API; {base} is its URL. Short timeouts and backoffs keep tests fast.
TOOLS_YAML = """\
$schema: ./tools.schema.json
breaker: {{failures: 3, cooldown: 0.3}}
tools:
  provision_ont:
    description: Activate the ONT in the provisioning system.
    action: Activating the ONT
    method: POST
    url: {base}/onts/{{fsan}}/activate
    inputs:
      fsan: {{type: string, pattern: "[A-Z]{{4}}[0-9A-F]{{8}}", normalize: upper}}
      ethernet_port: {{type: integer, min: 1, max: 4}}
      pin: {{type: string, sensitive: true, required: false}}
    headers:
      Authorization: Bearer ${{TEST_PROVISIONING_TOKEN}}
      Accept: application/json
    body: {{port: "{{ethernet_port}}", pin: "{{pin}}", note: "port {{ethernet_port}}"}}
    outputs:
      activation_id: /activation/id
      status: /activation/status
    refused:
      status: [409]
      message: /error/message
      inputs: [fsan]
    idempotency_key: Idempotency-Key
    timeout: 0.5
    idempotent: true
    retry: {{retries: 2, backoff: 0.01, jitter: 0.5}}
  check_light:
    description: Read the light level of an order's line.
    method: GET
    url: {base}/lines/{{order_id}}/light
    inputs:
      order_id: {{type: string}}
    outputs:
      rx_dbm: /levels/0/rx_dbm
    timeout: 0.5
    read_only: true
    idempotent: true
    retry: {{retries: 2, backoff: 0.01}}
  open_ticket:
    description: Open a ticket; acts once per idempotency key.
    method: POST
    url: {base}/tickets
    inputs:
      note: {{type: string}}
    body: {{note: "{{note}}"}}
    outputs:
      ticket: /ticket
    idempotency_key: Idempotency-Key
    timeout: 0.5
  light_wrong_output:
    description: A light lookup whose output the answer lacks.
    url: {base}/lines/{{order_id}}/light
    inputs: {{order_id: {{type: string}}}}
    outputs: {{rx_dbm: /levels/3/rx_dbm}}
    idempotent: true
  light_levels:
    description: Read the light at an ONT; one status has several meanings, told by kind.
    url: {base}/onts/{{fsan}}/light-levels
    inputs:
      fsan: {{type: string}}
      cleaned: {{type: boolean, required: false}}
    query: {{cleaned: "{{cleaned}}"}}
    outputs: {{rx_power_dbm: /rx_power_dbm}}
    refused:
      status: [422]
      when: {{/kind: refused}}
      message: /message
      arguments: /arguments
    fault:
      status: [424]
      when: {{/kind: field_fault}}
      message: /message
      remedy: /remedy
      confirm: /confirm
      retry_args: /retry_args
    failed: {{status: [424], message: /message}}
    read_only: true
    idempotent: true
  broken_lookup:
    description: An endpoint that answers HTML.
    url: {base}/broken
    outputs:
      value: /value
    idempotent: true
"""


@pytest.fixture(scope="module")
def api_server() -> Iterator[tuple[ApiState, str]]:
    state = ApiState()
    with serve(state) as base:
        yield state, base


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to the test's own API go straight to it, whatever proxy the machine sets."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api(api_server: tuple[ApiState, str]) -> ApiState:
    """The module's API, with nothing seen and no fault queued."""
    api_server[0].reset()
    return api_server[0]


@pytest.fixture
def base(api_server: tuple[ApiState, str]) -> str:
    return api_server[1]


@pytest.fixture
def tools_path(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "tools.yaml"
    path.write_text(TOOLS_YAML.format(base=base), encoding="utf-8")
    return path


@pytest.fixture
async def runtime(tools_path: Path, api: ApiState) -> AsyncIterator[HttpToolRuntime]:
    started = HttpToolRuntime(
        load_tools_file(tools_path), {"TEST_PROVISIONING_TOKEN": TOKEN}, source=str(tools_path)
    )
    try:
        yield started
    finally:
        await started.aclose()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[WorkOrderDB]:
    database = WorkOrderDB(tmp_path / "workorders.db")
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def agent(runtime: HttpToolRuntime, db: WorkOrderDB) -> InnerAgent:
    registry = default_registry()
    runtime.register(registry)
    return InnerAgent(registry, ToolContext(db, NetworkSimulator()), db.audit, backoff=0.001)
