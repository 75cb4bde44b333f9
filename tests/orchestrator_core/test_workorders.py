"""The work-order database: import, lookups, prioritisation, escalations and the audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core.audit import audit_json
from orchestrator_core.errors import WorkOrderError
from orchestrator_core.importer import (
    DEMO_DATA,
    ImportExpectations,
)
from orchestrator_core.orders import prioritize
from orchestrator_core.simulator import MODELS, TIERS
from tests.workorder_db import WorkOrderDB

#: What the bundled plans and the simulator accept, as the CLI passes it in.
EXPECT = ImportExpectations(
    service_tiers=tuple(TIERS),
    models=MODELS,
    tier_order_types=("installation",),
    planned_order_types=("installation", "repair"),
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[WorkOrderDB]:
    database = WorkOrderDB(tmp_path / "workorders.db")
    try:
        yield database
    finally:
        database.close()


def tech(cuid: str = "AB1234", **extra: Any) -> dict[str, Any]:
    return {"cuid": cuid, "name": f"Tech {cuid}", **extra}


def order(order_id: str, **extra: Any) -> dict[str, Any]:
    base = {
        "order_id": order_id,
        "cuid": "AB1234",
        "order_type": "installation",
        "status": "assigned",
        "scheduled_start": "2026-12-02T10:00:00Z",
        "created_at": "2026-11-20T10:00:00Z",
        "customer_name": "Ada Lovelace",
        "address": "1 Analytical Way",
    }
    return {**base, **extra}


async def test_an_invalid_record_is_named_with_its_field_and_nothing_is_imported(
    db: WorkOrderDB,
) -> None:
    orders = [order(f"ORD-100{i}") for i in range(3)] + [order("ORD-1007", status="finished")]
    with pytest.raises(WorkOrderError) as caught:
        await db.import_data({"technicians": [tech()], "orders": orders})
    assert "orders[3] (order_id=ORD-1007): status:" in str(caught.value)
    assert await db.is_empty()
    assert await db.get_order("ORD-1000") is None


async def test_a_missing_required_field_is_named(db: WorkOrderDB) -> None:
    bad = order("ORD-1")
    del bad["address"]
    expected = r"orders\[0\] \(order_id=ORD-1\): address: Field required"
    with pytest.raises(WorkOrderError, match=expected):
        await db.import_data({"technicians": [tech()], "orders": [bad]})


async def test_an_order_for_an_unknown_technician_is_refused(db: WorkOrderDB) -> None:
    with pytest.raises(WorkOrderError, match=r"orders\[0\] \(order_id=ORD-1\): cuid: .*ZZ9999"):
        await db.import_data({"technicians": [tech()], "orders": [order("ORD-1", cuid="ZZ9999")]})
    assert await db.is_empty()


async def test_an_order_may_belong_to_a_technician_already_in_the_database(db: WorkOrderDB) -> None:
    await db.import_data({"technicians": [tech()]})
    summary = await db.import_data({"orders": [order("ORD-1")]})
    assert summary.orders == 1
    assert await db.get_order("ORD-1") is not None


async def test_a_bad_inventory_status_is_named(db: WorkOrderDB) -> None:
    item = {"serial": "ALCL12345678", "model": "716GE", "status": "lost"}
    with pytest.raises(WorkOrderError, match=r"inventory\[0\] \(serial=ALCL12345678\): status"):
        await db.import_data({"inventory": [item]})


async def test_importing_the_same_ids_again_updates_instead_of_duplicating(db: WorkOrderDB) -> None:
    await db.import_data({"technicians": [tech()], "orders": [order("ORD-1")]})
    summary = await db.import_data(
        {
            "technicians": [tech(name="Alice B.")],
            "orders": [order("ORD-1", customer_name="Grace Hopper")],
        }
    )
    assert summary.updated == 2
    assert len(await db.list_orders("AB1234")) == 1
    assert (await db.get_order("ORD-1")).customer_name == "Grace Hopper"  # type: ignore[union-attr]
    assert (await db.get_technician("AB1234")).name == "Alice B."  # type: ignore[union-attr]


async def test_unknown_order_fields_are_kept_as_details(db: WorkOrderDB) -> None:
    await db.import_data(
        {
            "technicians": [tech()],
            "orders": [order("ORD-1", gate_code="4711", details={"floor": 3})],
        }
    )
    found = await db.get_order("ORD-1")
    assert found is not None
    assert found.details == {"floor": 3, "gate_code": "4711"}


async def test_optional_fields_may_be_absent_or_null(db: WorkOrderDB) -> None:
    nulls = {
        "scheduled_end": None,
        "service_tier": None,
        "details": None,
        "notes": None,
        "closed_at": None,
    }
    await db.import_data(
        {
            "technicians": [tech(), tech("CD5678", email=None, slack_user_id=None)],
            "orders": [order("ORD-1"), order("ORD-2", cuid="CD5678", **nulls)],
        }
    )
    for order_id in ("ORD-1", "ORD-2"):
        found = await db.get_order(order_id)
        assert found is not None and found.details == {} and found.service_tier is None
        assert found.scheduled_end is None and found.notes == ""
    assert (await db.get_technician("CD5678")).email is None  # type: ignore[union-attr]


async def test_a_blank_service_tier_counts_as_none(db: WorkOrderDB) -> None:
    summary = await db.import_data(
        {"technicians": [tech()], "orders": [order("ORD-1", service_tier="  ")]}, EXPECT
    )
    assert (await db.get_order("ORD-1")).service_tier is None  # type: ignore[union-attr]
    assert any("no service_tier" in w for w in summary.warnings)


async def test_an_import_warns_about_what_technicians_will_have_to_make_up_for(
    db: WorkOrderDB,
) -> None:
    orders = [order(f"ORD-{i}") for i in range(1, 4)]  # installations without a tier
    orders += [order("ORD-4", service_tier="1g"), order("ORD-5", service_tier="500M")]
    orders += [order(f"ORD-{i}", service_tier="GIG1000") for i in (6, 7)]
    orders += [order("ORD-8", status="completed")]  # closed: nobody works on it
    orders += [order("ORD-9", order_type="repair"), order("ORD-10", order_type="relocation")]
    inventory = [
        {"serial": "ALCL00000001", "model": "g-240w-f", "status": "available"},
        {"serial": "HWTC00000001", "model": "HG8245", "status": "available"},
    ]
    summary = await db.import_data(
        {"technicians": [tech()], "orders": orders, "inventory": inventory}, EXPECT
    )
    assert (summary.orders, summary.inventory) == (10, 2)  # warned about, never refused
    assert summary.warnings == (
        "3 open installation orders have no service_tier: the speed test will ask the "
        "technician for it (ORD-1, ORD-2, ORD-3)",
        "2 open orders have a service_tier the speed test doesn't know (GIG1000; known: "
        "300M, 500M, 1G): the technician will be asked for it (ORD-6, ORD-7)",
        "1 open order has an order_type no plan serves (relocation): TechAssist cannot guide "
        "the technician through it (ORD-10)",
        "1 inventory item has a model the provisioning system doesn't know (HG8245; known: "
        "G-010G-P, G-240W-F, 716GE, XS-010X-Q): it cannot be activated or used as a "
        "replacement (HWTC00000001)",
    )
    assert (await db.get_order("ORD-6")).service_tier == "GIG1000"  # type: ignore[union-attr]
    assert await db.get_inventory("HWTC00000001") is not None


async def test_long_warning_lists_are_cut_short(db: WorkOrderDB) -> None:
    orders = [order(f"ORD-{i:02d}") for i in range(1, 13)]
    summary = await db.import_data({"technicians": [tech()], "orders": orders}, EXPECT)
    assert summary.warnings == (
        "12 open installation orders have no service_tier: the speed test will ask the "
        "technician for it (ORD-01, ORD-02, ORD-03, ORD-04, ORD-05 and 7 more)",
    )


async def test_the_demo_data_warns_only_about_the_order_type_without_a_plan(
    db: WorkOrderDB,
) -> None:
    summary = await db.import_file(DEMO_DATA, EXPECT)
    assert summary.warnings == (
        "1 open order has an order_type no plan serves (relocation): TechAssist cannot guide "
        "the technician through it (ORD-1004)",
    )


async def test_without_expectations_an_import_warns_about_nothing(db: WorkOrderDB) -> None:
    orders = [order("ORD-1", service_tier="GIG1000"), order("ORD-2", order_type="moon")]
    summary = await db.import_data({"technicians": [tech()], "orders": orders})
    assert summary.orders == 2 and summary.warnings == ()


async def test_timestamps_without_a_zone_are_read_as_utc(db: WorkOrderDB) -> None:
    await db.import_data(
        {
            "technicians": [tech()],
            "orders": [
                order(
                    "ORD-1",
                    scheduled_start="2026-12-02T10:00:00",
                    created_at="2026-11-20T12:00:00+02:00",
                )
            ],
        }
    )
    found = await db.get_order("ORD-1")
    assert found is not None
    assert found.scheduled_start == datetime(2026, 12, 2, 10, tzinfo=UTC)
    assert found.created_at == datetime(2026, 11, 20, 10, tzinfo=UTC)


async def test_a_file_that_is_not_json_names_itself(db: WorkOrderDB, tmp_path: Path) -> None:
    bad = tmp_path / "orders.json"
    bad.write_text("{not json")
    with pytest.raises(WorkOrderError, match="orders.json"):
        await db.import_file(bad)


async def test_open_orders_put_in_progress_first_then_earliest_start_then_oldest(
    db: WorkOrderDB,
) -> None:
    await db.import_data(
        {
            "technicians": [tech()],
            "orders": [
                order("ORD-A", scheduled_start="2026-12-02T08:00:00Z"),
                order("ORD-B", scheduled_start="2026-12-02T12:00:00Z", status="in_progress"),
                order(
                    "ORD-C",
                    scheduled_start="2026-12-02T09:00:00Z",
                    created_at="2026-11-21T00:00:00Z",
                ),
                order(
                    "ORD-D",
                    scheduled_start="2026-12-02T09:00:00Z",
                    created_at="2026-11-19T00:00:00Z",
                ),
                order("ORD-F", scheduled_start="2026-12-02T07:00:00Z"),
                order("ORD-E", scheduled_start="2026-12-02T07:00:00Z"),
                order("ORD-X", scheduled_start="2026-12-01T07:00:00Z", status="completed"),
                order("ORD-Y", scheduled_start="2026-12-01T07:00:00Z", status="escalated"),
            ],
        }
    )
    assert [o.order_id for o in await db.open_orders("AB1234")] == [
        "ORD-B",
        "ORD-E",
        "ORD-F",
        "ORD-A",
        "ORD-D",
        "ORD-C",
    ]
    assert len(await db.list_orders("AB1234")) == 8


async def test_prioritize_drops_closed_orders(db: WorkOrderDB) -> None:
    await db.import_data(
        {
            "technicians": [tech()],
            "orders": [
                order("ORD-1", status="cancelled"),
                order("ORD-2"),
            ],
        }
    )
    assert [o.order_id for o in prioritize(await db.list_orders("AB1234"))] == ["ORD-2"]


async def test_the_demo_seed_has_the_documented_shape(db: WorkOrderDB) -> None:
    assert await db.seed_demo() is True
    assert await db.seed_demo() is False  # already seeded
    alice = await db.list_orders("AB1234")
    carlos = await db.list_orders("CD5678")
    assert len(alice) + len(carlos) >= 12
    assert sum(o.order_type == "installation" for o in alice) >= 4
    assert sum(o.order_type == "repair" for o in alice) >= 3
    assert [o.status for o in alice].count("in_progress") == 1
    assert sum(o.status == "completed" for o in alice) >= 2
    relocations = [o for o in alice + carlos if o.order_type == "relocation"]
    assert len(relocations) == 1
    assert (await db.open_orders("AB1234"))[1].order_type == "relocation"
    assert await db.list_orders("EF9012") == []
    assert await db.get_technician("EF9012") is not None
    for o in alice + carlos:
        if o.order_type == "installation":
            assert o.service_tier in ("300M", "500M", "1G")
        if o.order_type == "repair":
            assert {"trouble_description", "current_serial", "current_model"} <= set(o.details)


async def test_the_demo_file_lists_orders_out_of_time_order() -> None:
    from orchestrator_core.importer import DEMO_DATA

    starts = [o["scheduled_start"] for o in json.loads(DEMO_DATA.read_text())["orders"]]
    assert starts != sorted(starts)


async def test_technicians_are_found_by_slack_id_and_by_email_ignoring_case(
    db: WorkOrderDB,
) -> None:
    await db.seed_demo()
    assert (await db.find_technician_by_slack("U0CARLOS")).cuid == "CD5678"  # type: ignore[union-attr]
    by_mail = await db.find_technician_by_email("Alice.Brown@EXAMPLE.com")
    assert by_mail is not None and by_mail.cuid == "AB1234"
    assert await db.find_technician_by_email("nobody@example.com") is None
    assert await db.get_technician("ab1234") is not None


async def test_completing_an_order_records_closed_at_and_the_note(db: WorkOrderDB) -> None:
    await db.import_data({"technicians": [tech()], "orders": [order("ORD-1")]})
    done = await db.set_order_status("ORD-1", "completed", "all good")
    assert done.closed_at is not None
    assert "all good" in done.notes
    reopened = await db.set_order_status("ORD-1", "assigned")
    assert reopened.closed_at is None


async def test_an_unknown_status_or_order_is_refused(db: WorkOrderDB) -> None:
    await db.import_data({"technicians": [tech()], "orders": [order("ORD-1")]})
    with pytest.raises(WorkOrderError, match="unknown order status"):
        await db.set_order_status("ORD-1", "lost")
    with pytest.raises(WorkOrderError, match="no order"):
        await db.set_order_status("ORD-404", "completed")


async def test_inventory_status_changes_remember_the_order(db: WorkOrderDB) -> None:
    await db.seed_demo()
    await db.set_inventory_status("ALCL90ABCDEF", "installed", "ORD-1005")
    item = await db.get_inventory("alcl90abcdef")
    assert item is not None and item.status == "installed" and item.order_id == "ORD-1005"
    await db.set_inventory_status("ALCL90ABCDEF", "available")
    assert (await db.get_inventory("ALCL90ABCDEF")).order_id is None  # type: ignore[union-attr]


async def test_escalation_ids_count_up(db: WorkOrderDB) -> None:
    assert await db.add_escalation("AB1234", None, "help", "ladder too short") == "ESC-0001"
    assert await db.add_escalation("AB1234", "ORD-1", "order", "dog") == "ESC-0002"
    assert [e["reason"] for e in await db.escalations("AB1234")] == ["ladder too short", "dog"]


async def test_a_success_is_found_only_for_its_exact_call(db: WorkOrderDB) -> None:
    async def record(step: str, attempt: int, ok: bool, order_id: str | None = "ORD-1") -> None:
        await db.audit.record_call(
            "s1",
            order_id,
            step,
            attempt,
            1,
            "run_line_test",
            {"order_id": "ORD-1"},
            ok,
            None if ok else "failed",
            {"line_status": "ok"} if ok else {},
            1.5,
        )

    await record("line", 1, ok=False)
    await record("line", 2, ok=True)
    await record("other", 3, ok=True, order_id=None)
    assert await db.audit.find_success("s1", "ORD-1", "line", 1) is None
    assert await db.audit.find_success("s1", "ORD-1", "line", 2) == {"line_status": "ok"}
    assert await db.audit.find_success("s2", "ORD-1", "line", 2) is None
    assert await db.audit.find_success("s1", None, "other", 3) == {"line_status": "ok"}
    assert await db.audit.find_success("s1", "ORD-1", "line", 2, tool="escalate") is None
    assert len(await db.audit.audit_rows("s1")) == 3


async def test_audit_arguments_can_be_given_as_their_audit_text(db: WorkOrderDB) -> None:
    args = {"order_id": "ORD-1", "fsan": "ALCL1234ABCD"}
    await db.audit.record_call(
        "s1", "ORD-1", "act", 1, 1, "activate_ont", audit_json(args), True, None, {}, 1
    )
    assert (
        await db.audit.find_success("s1", "ORD-1", "act", 1, tool="activate_ont", args=args) == {}
    )
    assert await db.audit.find_success("s1", "ORD-1", "act", 1, args=audit_json(args)) == {}
    assert await db.audit.find_success("s1", "ORD-1", "act", 1, args={"order_id": "ORD-2"}) is None
    (row,) = await db.audit.audit_rows("s1")
    assert row["args"] == args
    assert datetime.fromisoformat(row["at"]).tzinfo is not None


async def test_data_survives_reopening_the_file(tmp_path: Path) -> None:
    first = WorkOrderDB(tmp_path / "w.db")
    try:
        await first.seed_demo()
    finally:
        first.close()
    second = WorkOrderDB(tmp_path / "w.db")
    try:
        assert not await second.is_empty()
        assert await second.seed_demo() is False
    finally:
        second.close()
