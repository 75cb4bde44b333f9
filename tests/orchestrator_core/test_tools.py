"""The built-in tools against a real demo database, and the registry that holds them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core import tools
from orchestrator_core.errors import ArgumentRefused, FieldFault, ToolFailed
from orchestrator_core.importer import DEMO_DATA, import_data
from orchestrator_core.plans import LEGACY_TASK_TOOLS, legacy_tool_for_task
from orchestrator_core.simulator import MODELS, NetworkSimulator, SimulatorConfig
from orchestrator_core.tools import (
    ToolContext,
    ToolRegistry,
    default_registry,
)
from tests.workorder_db import WorkOrderDB

DEMO_AVAILABLE = [
    item["serial"]
    for item in json.loads(DEMO_DATA.read_text())["inventory"]
    if item["status"] == "available"
]


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[ToolContext]:
    db = WorkOrderDB(tmp_path / "workorders.db")
    try:
        await db.seed_demo()
        yield ToolContext(db=db, sim=NetworkSimulator(SimulatorConfig()))
    finally:
        db.close()


def plain(caught: pytest.ExceptionInfo[ToolFailed]) -> bool:
    """The failure is permanent: neither entering values again nor retrying can fix it."""
    return type(caught.value) is ToolFailed


async def test_activating_a_serial_not_in_inventory_refuses_the_serial(ctx: ToolContext) -> None:
    with pytest.raises(ArgumentRefused, match="^Serial ALCL00000000 is not in inventory") as caught:
        await tools.activate_ont(ctx, "ORD-1005", "ALCL00000000", "G-240W-F", 1)
    assert caught.value.arguments == ("fsan",)


async def test_activating_a_serial_under_the_wrong_model_names_both_models(
    ctx: ToolContext,
) -> None:
    expected = "Serial CXNK00A1B2C3 is a G-240W-F in inventory, not a 716GE"
    with pytest.raises(ArgumentRefused, match=expected) as caught:
        await tools.activate_ont(ctx, "ORD-1005", "CXNK00A1B2C3", "716GE", 1)
    assert caught.value.arguments == ("fsan", "model")
    assert (await ctx.db.get_inventory("CXNK00A1B2C3")).status == "available"  # type: ignore[union-attr]


async def test_an_unknown_model_or_port_is_refused_with_the_accepted_values(
    ctx: ToolContext,
) -> None:
    with pytest.raises(ArgumentRefused, match="HG8245 is not a known ONT model") as model:
        await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "HG8245", 1)
    assert model.value.arguments == ("model",) and model.value.choices == MODELS
    with pytest.raises(ArgumentRefused, match="port 9 does not exist") as port:
        await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "G-240W-F", 9)
    assert port.value.arguments == ("ethernet_port",)
    assert (await ctx.db.get_inventory("ALCL90ABCDEF")).status == "available"  # type: ignore[union-attr]


async def test_faulty_or_unavailable_serials_are_refused_as_the_serial(ctx: ToolContext) -> None:
    with pytest.raises(ArgumentRefused, match="marked faulty") as faulty:
        await tools.activate_ont(ctx, "ORD-1005", "ALCLDEADBEEF", "G-010G-P", 1)
    assert faulty.value.arguments == ("fsan",)
    with pytest.raises(ArgumentRefused, match="not available: it is installed") as installed:
        await tools.replace_equipment(ctx, "ORD-1009", "ALCLB0B0CAFE")
    assert installed.value.arguments == ("new_serial",)
    with pytest.raises(ArgumentRefused, match="same as the old one") as same:
        await tools.replace_equipment(ctx, "ORD-1009", "ALCL5E6F7A8B", "alcl5e6f7a8b")
    assert same.value.arguments == ("new_serial",)
    with pytest.raises(ArgumentRefused, match="doesn't look like an ONT serial") as malformed:
        await tools.replace_equipment(ctx, "ORD-1009", "ALCL-5E6F")
    assert malformed.value.arguments == ("new_serial",)


async def test_an_inventory_item_of_a_model_nobody_knows_is_refused_as_the_serial(
    ctx: ToolContext,
) -> None:
    await import_data(
        ctx.db,
        {"inventory": [{"serial": "HWTC0000AAAA", "model": "HG8245", "status": "available"}]},
    )
    for activate_as in ("HG8245", "G-240W-F"):
        with pytest.raises(ArgumentRefused, match="a model the provisioning system") as caught:
            await tools.activate_ont(ctx, "ORD-1005", "HWTC0000AAAA", activate_as, 1)
        assert caught.value.arguments == ("fsan",)
    with pytest.raises(ArgumentRefused, match="use another ONT") as replacing:
        await tools.replace_equipment(ctx, "ORD-1009", "HWTC0000AAAA")
    assert replacing.value.arguments == ("new_serial",)


async def test_order_problems_are_permanent_failures(ctx: ToolContext) -> None:
    with pytest.raises(ToolFailed, match="There is no order ORD-0000") as missing:
        await tools.run_line_test(ctx, "ORD-0000")
    assert plain(missing)
    with pytest.raises(ToolFailed, match="cancelled and cannot be completed") as cancelled:
        await tools.close_order(ctx, "ORD-2004")
    assert plain(cancelled)
    with pytest.raises(ToolFailed, match="not assigned to you") as not_yours:
        await tools.start_order(ctx, "ORD-2001", "AB1234")
    assert plain(not_yours)
    await tools.escalate(ctx, "AB1234", "pole down", order_id="ORD-1009", kind="order")
    with pytest.raises(ToolFailed, match="already escalated") as escalated:
        await tools.start_order(ctx, "ORD-1009", "AB1234")
    assert plain(escalated)


async def test_activation_installs_the_serial_and_repeating_it_gives_the_same_ont(
    ctx: ToolContext,
) -> None:
    first = await tools.activate_ont(ctx, "ORD-1005", "alcl90abcdef", "g-240w-f", 2)
    again = await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "G-240W-F", 2)
    assert first == again and first["activation_status"] == "active"
    item = await ctx.db.get_inventory("ALCL90ABCDEF")
    assert item is not None and item.status == "installed" and item.order_id == "ORD-1005"


async def test_a_serial_installed_on_another_order_cannot_be_activated(ctx: ToolContext) -> None:
    await tools.activate_ont(ctx, "ORD-1005", "ALCL90ABCDEF", "G-240W-F", 1)
    with pytest.raises(ArgumentRefused, match="already installed on another order") as caught:
        await tools.activate_ont(ctx, "ORD-1006", "ALCL90ABCDEF", "G-240W-F", 1)
    assert caught.value.arguments == ("fsan",)


async def test_a_malformed_serial_is_explained(ctx: ToolContext) -> None:
    with pytest.raises(ArgumentRefused, match="4 letters then 8 hex digits") as caught:
        await tools.activate_ont(ctx, "ORD-1005", "ALCL123", "G-240W-F", 1)
    assert caught.value.arguments == ("fsan",)


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
    assert "customer not home" in (await ctx.db.get_order("ORD-1005")).notes  # type: ignore[union-attr]
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
    assert (await ctx.db.get_inventory("ALCLB0B0CAFE")).status == "faulty"  # type: ignore[union-attr]
    new = await ctx.db.get_inventory("ALCLF00D0001")
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
    assert (await ctx.db.get_order("ORD-1009")).status == "escalated"  # type: ignore[union-attr]
    help_request = await tools.escalate(ctx, "AB1234", "which ladder?", "ORD-1010", kind="help")
    assert help_request == {"escalation_id": "ESC-0002"}
    assert (await ctx.db.get_order("ORD-1010")).status == "assigned"  # type: ignore[union-attr]


async def test_a_dirty_connector_asks_for_cleaning_and_then_reads_good_light(
    ctx: ToolContext,
) -> None:
    assert (await tools.check_light_levels(ctx, "ALCL90ABCDEF"))["light_ok"] is True
    with pytest.raises(FieldFault, match=r"-25\.8 dBm received") as caught:
        await tools.check_light_levels(ctx, "ALCLC0FFEE02")
    fault = caught.value
    assert fault.remedy == "Clean and re-seat the fiber connector"
    assert fault.confirm == "cleaned" and fault.retry_args == {"cleaned": True}
    # The re-check runs against a fresh simulator: nothing was remembered in between.
    fresh = ToolContext(db=ctx.db, sim=NetworkSimulator(SimulatorConfig()))
    reading = await tools.check_light_levels(fresh, "ALCLC0FFEE02", **fault.retry_args)
    assert reading["light_ok"] is True and reading["rx_power_dbm"] > -25
    assert set(reading) == {"rx_power_dbm", "tx_power_dbm", "light_ok"}


async def test_a_damaged_fiber_needs_a_fiber_crew_however_often_it_is_cleaned(
    ctx: ToolContext,
) -> None:
    for cleaned in (False, True):
        with pytest.raises(ToolFailed, match="it needs a fiber crew") as caught:
            await tools.check_light_levels(ctx, "ALCLC0FFEE0E", cleaned=cleaned)
        assert plain(caught)
        assert "-26.9 dBm" in str(caught.value)
        assert "between the ONT and the splitter is damaged" in str(caught.value)


async def test_every_available_demo_ont_but_the_documented_ones_has_good_light(
    ctx: ToolContext,
) -> None:
    dark = []
    for serial in DEMO_AVAILABLE:
        try:
            await tools.check_light_levels(ctx, serial)
        except ToolFailed as exc:
            dark.append((serial, type(exc).__name__))
    assert dark == [("ALCLC0FFEE02", "FieldFault"), ("ALCLC0FFEE0E", "ToolFailed")]


@pytest.mark.parametrize("tier", ["GIG1000", "2G", " "])
async def test_the_speed_test_refuses_an_unknown_tier_offering_the_known_ones(
    ctx: ToolContext, tier: str
) -> None:
    assert (await tools.run_speed_test(ctx, "ALCL90ABCDEF", " 1g "))["tier_met"] is True
    with pytest.raises(ArgumentRefused, match="300M, 500M, 1G") as caught:
        await tools.run_speed_test(ctx, "ALCL90ABCDEF", tier)
    assert caught.value.arguments == ("service_tier",)
    assert caught.value.choices == ("300M", "500M", "1G")
    if tier.strip():
        assert str(caught.value) == (
            f"The service tier {tier} is not one the speed test knows (known: 300M, 500M, 1G)."
        )


async def test_a_customer_not_online_asks_for_the_confirmation_again(ctx: ToolContext) -> None:
    with pytest.raises(ArgumentRefused, match="The customer is not online yet") as caught:
        await tools.confirm_customer_online(ctx, False)
    assert caught.value.arguments == ("customer_online",)
    assert "confirm again" in str(caught.value)
    assert await tools.confirm_customer_online(ctx, True) == {"customer_online": True}


async def test_wifi_names_and_passwords_the_device_refuses_name_the_argument(
    ctx: ToolContext,
) -> None:
    with pytest.raises(ArgumentRefused, match="8 to 63") as password:
        await tools.configure_wifi(ctx, "ALCL90ABCDEF", "Home", "short")
    assert password.value.arguments == ("wifi_password",) and "short" not in str(password.value)
    with pytest.raises(ArgumentRefused, match="1 to 32 bytes") as name:
        await tools.configure_wifi(ctx, "ALCL90ABCDEF", "", "long enough")
    assert name.value.arguments == ("ssid",)
    ok = await tools.configure_wifi(ctx, "ALCL90ABCDEF", "Home", "long enough")
    assert ok == {"wifi_configured": True, "ssid": "Home"}


def bare_order(order_id: str, order_type: str) -> dict[str, Any]:
    """An order with only the fields the import format requires."""
    return {
        "order_id": order_id,
        "cuid": "MN0001",
        "order_type": order_type,
        "status": "assigned",
        "scheduled_start": "2026-12-01T08:00:00Z",
        "created_at": "2026-11-01T08:00:00Z",
        "customer_name": "Nadia",
        "address": "3 Quay",
    }


async def test_orders_with_none_of_the_optional_fields_work_with_every_tool(
    ctx: ToolContext,
) -> None:
    await import_data(
        ctx.db,
        {
            "technicians": [{"cuid": "MN0001", "name": "Mo Nash"}],
            "orders": [
                bare_order("NEW-1", "installation"),
                bare_order("NEW-2", "repair"),
                # Null optional fields, and details that are not strings.
                dict(bare_order("NEW-3", "repair"), details={"current_serial": 12345, "n": None}),
                dict(bare_order("NEW-4", "repair"), details=None, service_tier=None, notes=None),
            ],
        },
    )
    listed = (await tools.get_orders(ctx, "MN0001"))["orders"]
    assert [o["order_id"] for o in listed] == ["NEW-1", "NEW-2", "NEW-3", "NEW-4"]
    assert listed[0]["service_tier"] is None and listed[0]["details"] == {}
    details = await tools.get_order_details(ctx, "NEW-1")
    assert details["order"]["customer_name"] == "Nadia" and "current_serial" not in details
    assert (await tools.get_order_details(ctx, "NEW-3"))["current_serial"] == 12345
    speed = await tools.run_speed_test(ctx, "ALCL90ABCDEF", "500M")  # the technician's tier
    assert speed["tier_met"] is True
    for order_id, serial in (("NEW-2", "ALCLF00D0001"), ("NEW-3", "ALCL1A2B3C4D")):
        line = await tools.run_line_test(ctx, order_id)
        assert line["line_status"] in ("ok", "fault")
        replaced = await tools.replace_equipment(ctx, order_id, serial)
        assert replaced["replaced"] is True
        assert (await tools.run_line_test(ctx, order_id))["line_status"] == "ok"
    # The same again, with what a plan maps from the order's details: a number, nothing.
    await tools.replace_equipment(ctx, "NEW-4", "ALCL5E6F7A8B", 12345)
    assert await tools.start_order(ctx, "NEW-1", "MN0001") == {"status": "in_progress"}
    for order_id in ("NEW-1", "NEW-2", "NEW-3", "NEW-4"):
        assert (await tools.close_order(ctx, order_id))["status"] == "completed"
    assert (await tools.get_orders(ctx, "MN0001"))["orders"] == []


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


def test_tools_declare_the_fixed_values_an_argument_takes() -> None:
    registry = default_registry()
    speed, activate = registry.get("run_speed_test"), registry.get("activate_ont")
    assert speed is not None and activate is not None
    assert speed.choices == {"service_tier": ("300M", "500M", "1G")}
    assert activate.choices["model"] == MODELS
    assert activate.choices["ethernet_port"] == ("1", "2", "3", "4")
    assert registry.get("close_order").choices == {}  # type: ignore[union-attr]

    async def pick(ctx: ToolContext, colour: str) -> dict[str, Any]:
        return {"colour": colour}

    with pytest.raises(ValueError, match="no argument 'shade'"):
        ToolRegistry().register(pick, idempotent=True, choices={"shade": ("red",)})
    with pytest.raises(ValueError, match="empty"):
        ToolRegistry().register(pick, idempotent=True, choices={"colour": ()})


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
