"""The inner agent: validation, timeouts, retries, the audit and replays, against real tools."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core.inner_agent import CallContext, InnerAgent
from orchestrator_core.simulator import NetworkSimulator, SimulatorConfig
from orchestrator_core.tools import ToolContext, default_registry
from tests.workorder_db import WorkOrderDB


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[WorkOrderDB]:
    database = WorkOrderDB(tmp_path / "workorders.db")
    try:
        await database.seed_demo()
        yield database
    finally:
        database.close()


def agent(db: WorkOrderDB, *, timeout: float = 5.0, **config: Any) -> InnerAgent:
    sim = NetworkSimulator(SimulatorConfig(**config))
    return InnerAgent(
        default_registry(), ToolContext(db, sim), db.audit, timeout=timeout, backoff=0.001
    )


def call(step: str = "step", attempt: int = 1, **extra: Any) -> CallContext:
    return CallContext(session_id="s1", order_id="ORD-1005", step_id=step, attempt=attempt, **extra)


SPEED = {"fsan": "ALCL90ABCDEF", "service_tier": "1G"}


async def test_a_transient_failure_of_an_idempotent_tool_is_retried_until_it_succeeds(
    db: WorkOrderDB,
) -> None:
    result = await agent(db, failures={"run_speed_test": 2}).execute_task(
        "run_speed_test", SPEED, call()
    )
    assert result.ok and result.attempts == 3
    assert result.outputs["tier_met"] is True
    assert [(r["try_no"], r["ok"], r["error_kind"]) for r in await db.audit.audit_rows("s1")] == [
        (1, False, "transient"),
        (2, False, "transient"),
        (3, True, None),
    ]


async def test_retries_give_up_with_a_plain_message(db: WorkOrderDB) -> None:
    result = await agent(db, failures={"run_speed_test": 5}).execute_task(
        "run_speed_test", SPEED, call()
    )
    assert not result.ok and result.error_kind == "transient" and result.attempts == 3
    assert result.message.startswith("Running the speed test failed after 3 tries:")


async def test_a_non_idempotent_tool_is_not_retried(db: WorkOrderDB) -> None:
    runner = agent(db, failures={"escalate": 1})
    result = await runner.execute_task(
        "escalate", {"cuid": "AB1234", "reason": "pole down", "order_id": "ORD-1005"}, call()
    )
    assert not result.ok and result.error_kind == "transient" and result.attempts == 1
    assert runner.context.sim.calls("escalate") == 1
    assert await db.escalations() == []


async def test_a_slow_tool_times_out_and_counts_as_transient(db: WorkOrderDB) -> None:
    runner = agent(db, timeout=0.02, latency_ms=200)
    result = await runner.execute_task("run_line_test", {"order_id": "ORD-1007"}, call())
    assert not result.ok and result.error_kind == "timeout"
    assert result.attempts == 3  # idempotent, so retried
    assert "timed out" in result.message


async def test_a_refused_value_is_explained_and_names_the_argument(db: WorkOrderDB) -> None:
    result = await agent(db).execute_task(
        "activate_ont",
        {"order_id": "ORD-1005", "fsan": "ALCL00000000", "model": "G-240W-F", "ethernet_port": 1},
        call(),
    )
    assert not result.ok and result.error_kind == "refused" and result.attempts == 1
    assert result.message == "Activating the ONT failed: Serial ALCL00000000 is not in inventory."
    assert result.refused == ("fsan",) and result.choices == ()
    assert (await db.audit.audit_rows("s1"))[-1]["error_kind"] == "refused"


async def test_an_unknown_tier_is_refused_once_with_the_tiers_to_choose_from(
    db: WorkOrderDB,
) -> None:
    runner = agent(db)
    result = await runner.execute_task(
        "run_speed_test", {"fsan": "ALCL90ABCDEF", "service_tier": "GIG1000"}, call()
    )
    assert result.error_kind == "refused" and result.attempts == 1  # idempotent, not retried
    assert result.refused == ("service_tier",) and result.choices == ("300M", "500M", "1G")
    assert "GIG1000" in result.message and "300M, 500M, 1G" in result.message
    port = await runner.execute_task(
        "activate_ont",
        {"order_id": "ORD-1005", "fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": 8},
        call("port"),
    )
    assert port.refused == ("ethernet_port",) and port.choices == ("1", "2", "3", "4")


async def test_a_field_fault_says_what_to_do_and_the_retry_it_calls_for_succeeds(
    db: WorkOrderDB,
) -> None:
    runner = agent(db)
    args = {"fsan": "ALCLC0FFEE02"}
    dark = await runner.execute_task("check_light_levels", args, call("light"))
    assert not dark.ok and dark.error_kind == "fault" and dark.attempts == 1
    assert dark.message.startswith("Checking the light levels failed: The light level is too low")
    assert dark.remedy == "Clean and re-seat the fiber connector" and dark.confirm == "cleaned"
    assert dark.retry_args == {"cleaned": True}
    assert (await db.audit.audit_rows("s1"))[-1]["error_kind"] == "fault"
    cleaned = await runner.execute_task(
        "check_light_levels", {**args, **dark.retry_args}, call("light", attempt=2)
    )
    assert cleaned.ok and cleaned.outputs["light_ok"] is True


async def test_a_damaged_fiber_is_a_plain_failure_with_nothing_to_retry(db: WorkOrderDB) -> None:
    result = await agent(db).execute_task(
        "check_light_levels", {"fsan": "ALCLC0FFEE0E", "cleaned": True}, call()
    )
    assert result.error_kind == "failed" and "fiber crew" in result.message
    assert result.remedy == "" and result.retry_args == {} and result.refused == ()


async def test_arguments_are_coerced_to_the_tools_types(db: WorkOrderDB) -> None:
    result = await agent(db).execute_task(
        "activate_ont",
        {"order_id": "ORD-1005", "fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": "2"},
        call(),
    )
    assert result.ok, result.message
    online = await agent(db).execute_task(
        "confirm_customer_online", {"customer_online": "yes"}, call("online")
    )
    assert online.ok


async def test_bad_arguments_are_named_and_the_tool_does_not_run(db: WorkOrderDB) -> None:
    runner = agent(db)
    bad_port = await runner.execute_task(
        "activate_ont",
        {
            "order_id": "ORD-1005",
            "fsan": "ALCL90ABCDEF",
            "model": "G-240W-F",
            "ethernet_port": "two",
        },
        call(),
    )
    assert bad_port.error_kind == "bad_arguments" and "ethernet_port" in bad_port.message
    assert bad_port.refused == ("ethernet_port",)
    missing = await runner.execute_task("run_speed_test", {"fsan": "ALCL90ABCDEF"}, call("b"))
    assert missing.error_kind == "bad_arguments" and "service_tier is missing" in missing.message
    # What the order lacks can be asked for, with the values to choose from.
    assert missing.refused == ("service_tier",) and missing.choices == ("300M", "500M", "1G")
    wrong_type = await runner.execute_task(
        "run_speed_test", {"fsan": "ALCL90ABCDEF", "service_tier": 1000}, call("d")
    )
    assert wrong_type.error_kind == "bad_arguments" and wrong_type.refused == ("service_tier",)
    extra = await runner.execute_task("run_line_test", {"order_id": "ORD-1", "x": 1}, call("c"))
    assert extra.error_kind == "bad_arguments" and "x is not an argument" in extra.message
    assert extra.refused == ()
    both = await runner.execute_task("activate_ont", {"order_id": "ORD-1005"}, call("e"))
    assert both.refused == ("fsan", "model", "ethernet_port") and both.choices == ()
    assert (await db.get_inventory("ALCL90ABCDEF")).status == "available"  # type: ignore[union-attr]
    assert runner.context.sim.calls("run_speed_test") == 0


async def test_an_unknown_tool_is_reported_not_raised(db: WorkOrderDB) -> None:
    result = await agent(db).execute_task("launch_rocket", {}, call())
    assert not result.ok and result.error_kind == "unknown_tool"


async def test_an_unexpected_exception_becomes_an_internal_error_with_a_logged_traceback(
    db: WorkOrderDB, caplog: pytest.LogCaptureFixture
) -> None:
    registry = default_registry()

    async def broken(ctx: ToolContext, wifi_password: str) -> dict[str, Any]:
        raise RuntimeError("database exploded")

    registry.register(broken, idempotent=True)
    runner = InnerAgent(registry, ToolContext(db, NetworkSimulator(SimulatorConfig())), db.audit)
    with caplog.at_level(logging.ERROR, logger="techassist.inner_agent"):
        result = await runner.execute_task(
            "broken",
            {"wifi_password": "hunter2hunter2"},
            call(sensitive=frozenset({"wifi_password"})),
        )
    assert not result.ok and result.error_kind == "internal" and result.attempts == 1
    assert result.message == "An internal error occurred while running broken"
    assert "database exploded" not in result.message
    assert any(r.exc_info for r in caplog.records)
    assert "hunter2hunter2" not in caplog.text


async def test_the_audit_masks_sensitive_arguments(db: WorkOrderDB) -> None:
    result = await agent(db).execute_task(
        "configure_wifi",
        {"fsan": "ALCL90ABCDEF", "ssid": "Home", "wifi_password": "correct horse"},
        call(sensitive=frozenset({"wifi_password"})),
    )
    assert result.ok
    (row,) = await db.audit.audit_rows("s1")
    assert row["args"] == {"fsan": "ALCL90ABCDEF", "ssid": "Home", "wifi_password": "***"}
    assert row["tool"] == "configure_wifi" and row["ok"] is True and row["duration_ms"] >= 0
    assert "correct horse" not in str(await db.audit.audit_rows())


async def test_a_replayed_call_returns_the_recorded_outputs_without_running_again(
    db: WorkOrderDB,
) -> None:
    args = {"cuid": "AB1234", "reason": "pole down", "order_id": "ORD-1005", "kind": "order"}
    first = await agent(db).execute_task("escalate", args, call("escalate", attempt=7))
    # A new agent, as after a crash and restart, given the same call again.
    replay = await agent(db).execute_task("escalate", args, call("escalate", attempt=7))
    assert replay.ok and replay.replayed and replay.outputs == first.outputs
    assert len(await db.escalations()) == 1
    assert len(await db.audit.audit_rows("s1")) == 1
    fresh = await agent(db).execute_task("escalate", args, call("escalate", attempt=8))
    assert not fresh.replayed and fresh.outputs != first.outputs


async def test_a_replayed_call_with_other_arguments_runs_afresh(db: WorkOrderDB) -> None:
    """A call slot reused by a different call (a turn that was never saved) is not a replay."""
    first = {"cuid": "AB1234", "reason": "pole down", "order_id": "ORD-1005", "kind": "order"}
    await agent(db).execute_task("escalate", first, call("escalate", attempt=3))
    other = dict(first, reason="gate locked")
    again = await agent(db).execute_task("escalate", other, call("escalate", attempt=3))
    assert not again.replayed and len(await db.escalations()) == 2


async def test_a_read_only_tool_simply_runs_again_on_a_replay(db: WorkOrderDB) -> None:
    runner = agent(db)
    args = {"fsan": "ALCL90ABCDEF"}
    await runner.execute_task("check_light_levels", args, call("light", attempt=2))
    again = await runner.execute_task("check_light_levels", args, call("light", attempt=2))
    assert again.ok and not again.replayed
    assert runner.context.sim.calls("check_light_levels") == 2


async def test_a_current_serial_the_order_recorded_as_a_number_does_not_block_a_repair(
    db: WorkOrderDB,
) -> None:
    order = await db.get_order("ORD-1009")
    assert order is not None
    record = order.model_dump(mode="json", exclude={"closed_at"})
    await db.import_data({"orders": [dict(record, details={"current_serial": 770011})]})
    trouble = await agent(db).execute_task("get_order_details", {"order_id": "ORD-1009"}, call())
    # A plan maps the replaced serial from the order's details, whatever they hold.
    args = {
        "order_id": "ORD-1009",
        "new_serial": "ALCL5E6F7A8B",
        "old_serial": trouble.outputs["current_serial"],
    }
    replaced = await agent(db).execute_task("replace_equipment", args, call("replace"))
    assert replaced.ok, replaced.message
