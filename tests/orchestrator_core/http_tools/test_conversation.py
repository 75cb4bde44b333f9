"""A plan step that runs a declared HTTP tool, in a conversation: what the technician sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bridges.memory import MemoryBridge
from tests.conftest import ServicesFactory
from tests.orchestrator_core.http_tools.api import IN_USE, TOKEN, ApiState
from tests.scenarios.helpers import question, said

PROVISION = {
    "id": "http-repair",
    "title": "Repair over HTTP",
    "order_types": ["repair"],
    "parameters": {
        "fsan": {"prompt": "The new ONT's serial?", "normalize": "upper"},
        "ethernet_port": {"prompt": "Which Ethernet port?", "type": "integer"},
    },
    "steps": [
        {
            "id": "provision",
            "task": "Activate the new ONT",
            "tool": "provision_ont",
            "parameters": ["fsan", "ethernet_port"],
            "outputs": {"activation_id": "activation_id"},
            "done": "Activated: {activation_id}.",
        }
    ],
}


@pytest.fixture
async def chat(
    make_services: ServicesFactory,
    tmp_path: Path,
    tools_path: Path,
    api: ApiState,
    monkeypatch: pytest.MonkeyPatch,
) -> MemoryBridge:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "http-repair.json").write_text(json.dumps(PROVISION))
    monkeypatch.setenv("TEST_PROVISIONING_TOKEN", TOKEN)
    services = await make_services(plans_dir=plans, tools_file=tools_path)
    bridge = MemoryBridge(services.orchestrator, "CD5678")
    await bridge.start("CD5678")
    asked = await bridge.say("yes")  # start the repair
    assert question(asked).needs == "fsan"
    return bridge


async def test_a_refused_serial_is_told_in_the_systems_words_and_asked_again(
    chat: MemoryBridge, api: ApiState
) -> None:
    refused = await chat.say(f"fsan={IN_USE} ethernet_port=2")
    assert f"serial {IN_USE} already in use" in said(refused)
    assert question(refused).needs == "fsan"
    done = await chat.say("alcl1234abcd")
    assert "Activated: ACT-ALCL1234ABCD." in said(done)
    assert len(api.requests_to("/onts/")) == 2


async def test_a_host_that_keeps_failing_offers_a_retry_that_sends_the_same_key(
    chat: MemoryBridge, api: ApiState
) -> None:
    api.fail("activate", "503", "503", "503")  # the first try and both automatic retries
    failed = await chat.say("fsan=ALCL1234ABCD ethernet_port=2")
    assert question(failed).choices == ["retry", "escalate"]
    assert "failed after 3 tries: 127.0.0.1" in said(failed)
    assert "is having trouble (HTTP 503)." in said(failed)
    # Three failures in a row opened the host's breaker: a retry now is answered at once.
    resting = await chat.say("retry")
    assert "failed 3 times in a row, so TechAssist is giving it a rest" in said(resting)
    assert question(resting).choices == ["retry", "escalate"]
    assert len(api.requests_to("/onts/")) == 3
    await asyncio.sleep(0.35)  # the breaker's cool-down
    done = await chat.say("retry")
    assert "Activated: ACT-ALCL1234ABCD." in said(done)
    requests = api.requests_to("/onts/")
    assert len(requests) == 4 and len({r.key for r in requests}) == 1
