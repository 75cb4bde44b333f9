"""Conversations on plans other than the bundled ones."""

from __future__ import annotations

import json
from pathlib import Path

from bridges.memory import MemoryBridge
from tests.conftest import ServicesFactory
from tests.scenarios.helpers import question, said

SHORT_REPAIR = {
    "id": "short-repair",
    "title": "Quick repair",
    "order_types": ["repair"],
    "parameters": {
        "diagnosis_code": {"prompt": "Diagnosis?", "type": "choice", "choices": ["OK", "BROKEN"]}
    },
    "steps": [
        {
            "id": "line",
            "task": "Test the line",
            "tool": "run_line_test",
            "inputs": {"order_id": "order.order_id"},
            "outputs": {"line_status": "line_status"},
        },
        {"id": "diagnosis", "task": "Record the diagnosis", "parameters": ["diagnosis_code"]},
    ],
}


def plans_dir(tmp_path: Path, *plans: object) -> Path:
    directory = tmp_path / "plans"
    directory.mkdir()
    for i, plan in enumerate(plans):
        (directory / f"plan{i}.json").write_text(json.dumps(plan))
    return directory


async def test_a_plan_without_a_closing_step_still_closes_the_order(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    services = await make_services(plans_dir=plans_dir(tmp_path, SHORT_REPAIR))
    chat = MemoryBridge(services.orchestrator, "CD5678")
    await chat.start("CD5678")
    asked = await chat.say("yes")
    assert question(asked).choices == ["OK", "BROKEN"]
    done = await chat.say("ok")
    assert "Order ORD-2001 is closed." in said(done)
    order = await services.workorders.get_order("ORD-2001")
    assert order is not None and order.status == "completed"


async def test_an_installation_with_no_plan_for_its_type_is_explained(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    services = await make_services(plans_dir=plans_dir(tmp_path, SHORT_REPAIR))
    chat = MemoryBridge(services.orchestrator, "AB1234")
    opened = await chat.start("AB1234")  # only repairs have a plan here
    assert "ORD-1003 (installation)" in said(opened) and "waiting for a plan" in said(opened)
    proposal = question(opened)
    assert "repair" in proposal.text and "installation" not in proposal.text
