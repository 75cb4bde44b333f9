"""The built-in tools against a real demo database, and the registry that holds them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core import tools
from orchestrator_core.errors import ToolFailed
from orchestrator_core.plans import LEGACY_TASK_TOOLS, legacy_tool_for_task
from orchestrator_core.simulator import NetworkSimulator, SimulatorConfig
from orchestrator_core.tools import (
    ToolContext,
    ToolRegistry,
    default_registry,
)
from orchestrator_core.workorders import DEMO_DATA, WorkOrderDB

DEMO_AVAILABLE = [
    item["serial"]
    for item in json.loads(DEMO_DATA.read_text())["inventory"]
    if item["status"] == "available"
]


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ToolContext]:
    db = WorkOrderDB(tmp_path / "workorders.db")
    try:
        db.seed_demo()
        yield ToolContext(db=db, sim=NetworkSimulator(SimulatorConfig()))
    finally:
        db.close()


async def test_activating_a_serial_not_in_inventory_says_so(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="^Serial ALCL00000000 is not in inventory"):
        await tools.activate_ont(ctx, "ORD-1005", "ALCL00000000", "G-240W-F", 1)


async def test_activating_a_serial_under_the_wrong_model_names_both_models(
    ctx: ToolContext,
) -> None:
    expected = "Serial CXNK00A1B2C3 is a G-240W-F in inventory, not a 716GE"
    with pytest.raises(ToolFailed, match=expected):
        await tools.activate_ont(ctx, "ORD-1005", "CXNK00A1B2C3", "716GE", 1)
    assert ctx.db.get_inventory("CXNK00A1B2C3").status == "available"  # type: ignore[union-attr]


async def test_activation_installs_the_serial_and_repeating_it_gives_the_same_ont(
    ctx: ToolContext,
) -> None:
    first = await tools.activate_ont(ctx, "ORD-1005", "alcl90abcdef", "g-240w-f", 2)
    again = await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "G-240W-F", 2)
    assert first == again and first["activation_status"] == "active"
    item = ctx.db.get_inventory("ALCL90ABCDEF")
    assert item is not None and item.status == "installed" and item.order_id == "ORD-1005"


async def test_a_serial_installed_on_another_order_cannot_be_activated(ctx: ToolContext) -> None:
    await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "G-240W-F", 1)
    with pytest.raises(ToolFailed, match="already installed on another order"):
        await tools.activate_ont(ctx, "ORD-1006", "ALCL90ABCDEF", "G-240W-F", 1)


async def test_a_malformed_serial_is_explained(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="4 letters then 8 hex digits"):
        await tools.activate_ont(ctx, "ORD-1005", "ALCL123", "G-240W-F", 1)


async def test_an_unknown_cuid_reveals_nothing_about_other_technicians(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed) as caught:
        await tools.find_technician(ctx, "ZZ9999")
    for other in ("AB1234", "Alice", "CD5678", "Carlos", "EF9012", "Erin"):
        assert other not in str(caught.value)
    assert await tools.find_technician(ctx, "ab1234") == {"cuid": "AB1234", "name": "Alice Brown"}


async def test_get_orders_lists_open_orders_most_urgent_first(ctx: ToolContext) -> None:
    orders = (await tools.get_orders(ctx, "AB1234"))["orders"]
    assert [o["order_id"] for o in orders[:2]] == ["ORD-1003", "ORD-1004"]
    assert all(o["status"] in ("assigned", "in_progress") for o in orders)
    assert (await tools.get_orders(ctx, "EF9012"))["orders"] == []


async def test_order_details_are_shown_at_the_top_level(ctx: ToolContext) -> None:
    result = await tools.get_order_details(ctx, "ORD-1007")
    assert result["current_serial"] == "ALCLB0B0CAFE"
    assert result["current_model"] == "G-240W-F"
    assert result["trouble_description"]
    assert result["order"]["order_id"] == "ORD-1007"


async def test_starting_releasing_and_closing_an_order_move_its_status(ctx: ToolContext) -> None:
    assert await tools.start_order(ctx, "ORD-1005", "AB1234") == {"status": "in_progress"}
    assert await tools.start_order(ctx, "ORD-1005", "AB1234") == {"status": "in_progress"}
    assert await tools.release_order(ctx, "ORD-1005", "customer not home") == {"status": "assigned"}
    assert "customer not home" in ctx.db.get_order("ORD-1005").notes  # type: ignore[union-attr]
    closed = await tools.close_order(ctx, "ORD-1005", "done")
    assert closed["status"] == "completed" and closed["closed_at"]
    assert await tools.close_order(ctx, "ORD-1005") == closed
    with pytest.raises(ToolFailed, match="already completed"):
        await tools.start_order(ctx, "ORD-1005", "AB1234")


async def test_a_technician_cannot_start_someone_elses_order(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="not assigned to you"):
        await tools.start_order(ctx, "ORD-2001", "AB1234")


async def test_replacing_equipment_marks_old_faulty_and_new_installed_once(
    ctx: ToolContext,
) -> None:
    first = await tools.replace_equipment(ctx, "ORD-1007", "ALCLF00D0001")
    assert first == {"new_serial": "ALCLF00D0001", "new_model": "G-240W-F", "replaced": True}
    assert await tools.replace_equipment(ctx, "ORD-1007", "ALCLF00D0001") == first
    assert ctx.db.get_inventory("ALCLB0B0CAFE").status == "faulty"  # type: ignore[union-attr]
    new = ctx.db.get_inventory("ALCLF00D0001")
    assert new is not None and new.status == "installed" and new.order_id == "ORD-1007"
    with pytest.raises(ToolFailed, match="not available"):
        await tools.replace_equipment(ctx, "ORD-1009", "ALCLDEADBEEF")


async def test_a_faulty_line_tests_ok_after_the_ont_is_replaced(ctx: ToolContext) -> None:
    assert (await tools.run_line_test(ctx, "ORD-1007"))["line_status"] == "fault"
    assert (await tools.run_line_test(ctx, "ORD-1007"))["line_status"] == "fault"
    await tools.replace_equipment(ctx, "ORD-1007", "ALCLF00D0001", "ALCLB0B0CAFE")
    retest = await tools.run_line_test(ctx, "ORD-1007")
    assert retest["line_status"] == "ok" and retest["fault_location"] is None


async def test_an_order_escalation_takes_the_order_off_the_list(ctx: ToolContext) -> None:
    result = await tools.escalate(ctx, "AB1234", "pole down", order_id="ORD-1009", kind="order")
    assert result == {"escalation_id": "ESC-0001"}
    assert ctx.db.get_order("ORD-1009").status == "escalated"  # type: ignore[union-attr]
    help_request = await tools.escalate(ctx, "AB1234", "which ladder?", "ORD-1010", kind="help")
    assert help_request == {"escalation_id": "ESC-0002"}
    assert ctx.db.get_order("ORD-1010").status == "assigned"  # type: ignore[union-attr]


async def test_low_light_is_a_failure_with_the_reading(ctx: ToolContext) -> None:
    assert (await tools.check_light_levels(ctx, "ALCL90ABCDEF"))["light_ok"] is True
    with pytest.raises(ToolFailed, match=r"-25\.8 dBm"):
        await tools.check_light_levels(ctx, "ALCLC0FFEE02")


async def test_every_available_demo_ont_but_the_documented_one_has_good_light(
    ctx: ToolContext,
) -> None:
    dark = []
    for serial in DEMO_AVAILABLE:
        try:
            await tools.check_light_levels(ctx, serial)
        except ToolFailed:
            dark.append(serial)
    assert dark == ["ALCLC0FFEE02"]


async def test_the_speed_test_refuses_an_unknown_tier(ctx: ToolContext) -> None:
    assert (await tools.run_speed_test(ctx, "ALCL90ABCDEF", "1g"))["tier_met"] is True
    with pytest.raises(ToolFailed, match="Unknown service tier '2G'"):
        await tools.run_speed_test(ctx, "ALCL90ABCDEF", "2G")


async def test_a_customer_not_online_is_a_failure(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="The customer is not online yet"):
        await tools.confirm_customer_online(ctx, False)
    assert await tools.confirm_customer_online(ctx, True) == {"customer_online": True}


async def test_wifi_passwords_shorter_than_8_characters_are_refused(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="8 to 63"):
        await tools.configure_wifi(ctx, "ALCL90ABCDEF", "Home", "short")
    ok = await tools.configure_wifi(ctx, "ALCL90ABCDEF", "Home", "long enough")
    assert ok == {"wifi_configured": True, "ssid": "Home"}


def test_the_default_registry_declares_arguments_and_retry_safety() -> None:
    registry = default_registry()
    activate = registry.get("activate_ont")
    assert activate is not None and activate.idempotent
    assert activate.accepted == {"order_id", "fsan", "model", "ethernet_port"}
    assert activate.required == activate.accepted
    escalate = registry.get("escalate")
    assert escalate is not None and not escalate.idempotent
    assert escalate.required == {"cuid", "reason"}
    assert "close_order" in registry and "nope" not in registry
    assert set(registry.names()) == set(LEGACY_TASK_TOOLS.values())


def test_the_registry_refuses_what_cannot_be_a_tool() -> None:
    registry = ToolRegistry()

    def not_async(ctx: ToolContext) -> dict[str, Any]:
        return {}

    async def no_ctx(order_id: str) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="async"):
        registry.register(not_async, idempotent=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ctx"):
        registry.register(no_ctx, idempotent=True)
    registry.register(tools.close_order, idempotent=True)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(tools.close_order, idempotent=True)


def test_legacy_task_texts_map_to_tools_ignoring_case() -> None:
    assert legacy_tool_for_task("Activate ONT") == "activate_ont"
    assert legacy_tool_for_task("  check LIGHT levels. ") == "check_light_levels"
    assert legacy_tool_for_task("Replace equipment") == "replace_equipment"
    assert legacy_tool_for_task("Paint the van") is None
