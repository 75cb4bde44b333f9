"""One contract for every work-order backend (SQLite, PostgreSQL): they must behave the same."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator_core.errors import ArgumentRefused, InventoryConflict, WorkOrderError
from orchestrator_core.importer import import_data, seed_demo
from orchestrator_core.simulator import NetworkSimulator, SimulatorConfig
from orchestrator_core.tools import ToolContext, activate_ont
from tests.orchestrator_core.workorders.backends import Handle, Opener


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


def item(serial: str, status: str = "available", model: str = "G-240W-F") -> dict[str, Any]:
    return {"serial": serial, "model": model, "status": status}


# -- import


async def test_an_invalid_record_imports_nothing_and_is_named(db: Handle) -> None:
    data = {"technicians": [tech()], "orders": [order("ORD-1"), order("ORD-2", status="done")]}
    with pytest.raises(WorkOrderError, match=r"orders\[1\] \(order_id=ORD-2\): status"):
        await import_data(db.orders, data)
    assert await db.orders.is_empty()
    assert await db.orders.get_order("ORD-1") is None


async def test_an_order_for_an_unknown_technician_imports_nothing(db: Handle) -> None:
    data = {"technicians": [tech()], "orders": [order("ORD-1", cuid="ZZ9999")]}
    with pytest.raises(WorkOrderError, match="no technician 'ZZ9999'"):
        await import_data(db.orders, data)
    assert await db.orders.is_empty()


async def test_importing_again_upserts_by_id_in_any_case(db: Handle) -> None:
    await import_data(
        db.orders, {"technicians": [tech()], "orders": [order("ORD-1", notes="gate")]}
    )
    again = {
        "technicians": [tech("ab1234", name="Alice B.")],
        "orders": [order("ord-1", customer_name="Grace Hopper")],
        "inventory": [item("CXNK00000001")],
    }
    summary = await import_data(db.orders, again)
    assert (summary.technicians, summary.orders, summary.inventory, summary.updated) == (
        1,
        1,
        1,
        2,
    )
    orders = await db.orders.list_orders("AB1234")
    assert [(o.customer_name, o.notes) for o in orders] == [("Grace Hopper", "gate")]
    found = await db.orders.get_technician("Ab1234")
    assert found is not None and found.name == "Alice B."
    assert await db.orders.get_order("ORD-1") is not None


async def test_unknown_order_fields_are_kept_as_details_and_times_in_utc(db: Handle) -> None:
    data = {
        "technicians": [tech(email="Alice@Example.com", slack_user_id="U1")],
        "orders": [order("ORD-1", scheduled_start="2026-12-02T10:00:00+02:00", gate="blue")],
    }
    await import_data(db.orders, data)
    got = await db.orders.get_order("ORD-1")
    assert got is not None and got.details == {"gate": "blue"}
    assert got.scheduled_start == datetime(2026, 12, 2, 8, tzinfo=UTC)
    by_mail = await db.orders.find_technician_by_email("alice@example.COM")
    by_slack = await db.orders.find_technician_by_slack("U1")
    assert by_mail is not None and by_slack is not None and by_mail.cuid == by_slack.cuid


# -- orders


async def test_open_orders_put_in_progress_first_then_earliest_start(db: Handle) -> None:
    await import_data(
        db.orders,
        {
            "technicians": [tech()],
            "orders": [
                order("ORD-1", scheduled_start="2026-12-03T08:00:00Z"),
                order("ORD-2", scheduled_start="2026-12-02T08:00:00Z"),
                order("ORD-3", scheduled_start="2026-12-04T08:00:00Z", status="in_progress"),
                order("ORD-4", status="completed"),
            ],
        },
    )
    assert [o.order_id for o in await db.orders.open_orders("ab1234")] == [
        "ORD-3",
        "ORD-2",
        "ORD-1",
    ]
    assert len(await db.orders.list_orders("AB1234")) == 4


async def test_status_changes_record_notes_and_closed_at_once(db: Handle) -> None:
    await import_data(db.orders, {"technicians": [tech()], "orders": [order("ORD-1")]})
    started = await db.orders.set_order_status("ord-1", "in_progress", "started")
    assert started.status == "in_progress" and started.closed_at is None
    done = await db.orders.set_order_status("ORD-1", "completed", "all good")
    assert done.closed_at is not None
    assert done.notes.splitlines()[-1].endswith("[completed] all good")
    assert len(done.notes.splitlines()) == 2
    again = await db.orders.set_order_status("ORD-1", "completed")
    assert again.closed_at == done.closed_at and again.notes == done.notes
    reopened = await db.orders.set_order_status("ORD-1", "assigned")
    assert reopened.closed_at is None
    with pytest.raises(WorkOrderError, match="unknown order status"):
        await db.orders.set_order_status("ORD-1", "finished")
    with pytest.raises(WorkOrderError, match="no order"):
        await db.orders.set_order_status("ORD-404", "completed")


# -- inventory


async def test_inventory_moves_remember_the_order(db: Handle) -> None:
    await import_data(
        db.orders,
        {"technicians": [tech()], "orders": [order("ORD-1")], "inventory": [item("CXNK0000AAAA")]},
    )
    await db.orders.set_inventory_status("cxnk0000aaaa", "installed", "ORD-1")
    got = await db.orders.get_inventory("CXNK0000AAAA")
    assert got is not None and (got.status, got.order_id) == ("installed", "ORD-1")
    assert [i.serial for i in await db.orders.inventory_on_order("ord-1")] == ["CXNK0000AAAA"]
    await db.orders.set_inventory_status("CXNK0000AAAA", "faulty")
    got = await db.orders.get_inventory("CXNK0000AAAA")
    assert got is not None and (got.status, got.order_id) == ("faulty", "ORD-1")
    await db.orders.set_inventory_status("CXNK0000AAAA", "available")
    got = await db.orders.get_inventory("CXNK0000AAAA")
    assert got is not None and got.order_id is None
    with pytest.raises(WorkOrderError, match="no inventory item"):
        await db.orders.set_inventory_status("CXNK0000FFFF", "installed")
    with pytest.raises(WorkOrderError, match="unknown inventory status"):
        await db.orders.set_inventory_status("CXNK0000AAAA", "lost")


async def test_a_conditional_move_refuses_an_item_in_another_status(db: Handle) -> None:
    await import_data(
        db.orders,
        {
            "technicians": [tech()],
            "orders": [order("ORD-1")],
            "inventory": [item("CXNK0000AAAA", "faulty")],
        },
    )
    with pytest.raises(InventoryConflict) as caught:
        await db.orders.set_inventory_status(
            "CXNK0000AAAA", "installed", "ORD-1", expected=("available",)
        )
    assert caught.value.status == "faulty"
    got = await db.orders.get_inventory("CXNK0000AAAA")
    assert got is not None and got.status == "faulty" and got.order_id is None


async def test_two_instances_installing_one_serial_at_once_one_succeeds(opener: Opener) -> None:
    first, second = await opener(), await opener()
    data = {
        "technicians": [tech(), tech("CD5678")],
        "orders": [order("ORD-1"), order("ORD-2", cuid="CD5678")],
        "inventory": [item("CXNK0000AAAA")],
    }
    await import_data(first.orders, data)

    async def install(handle: Handle, order_id: str) -> bool:
        try:
            await handle.orders.set_inventory_status(
                "CXNK0000AAAA", "installed", order_id, expected=("available",)
            )
        except InventoryConflict:
            return False
        return True

    for _ in range(5):
        await first.orders.set_inventory_status("CXNK0000AAAA", "available")
        results = await asyncio.gather(install(first, "ORD-1"), install(second, "ORD-2"))
        assert sorted(results) == [False, True]
        winner = "ORD-1" if results[0] else "ORD-2"
        got = await second.orders.get_inventory("CXNK0000AAAA")
        assert got is not None and (got.status, got.order_id) == ("installed", winner)


async def test_two_technicians_activating_one_serial_at_once_one_is_told(opener: Opener) -> None:
    first, second = await opener(), await opener()
    await seed_demo(first.orders)
    serial = "ALCL90ABCDEF"
    before = await first.orders.get_inventory(serial)
    assert before is not None and before.status == "available"
    sim = NetworkSimulator(SimulatorConfig())

    async def activate(handle: Handle, order_id: str) -> str:
        try:
            await activate_ont(ToolContext(handle.orders, sim), order_id, serial, before.model, 1)
        except ArgumentRefused as exc:
            return str(exc)
        return "ok"

    results = await asyncio.gather(activate(first, "ORD-1005"), activate(second, "ORD-1006"))
    assert results.count("ok") == 1, results
    (refused,) = [r for r in results if r != "ok"]
    assert serial in refused and "installed" in refused


# -- escalations


async def test_escalations_count_up_and_are_counted_per_technician(db: Handle) -> None:
    await import_data(db.orders, {"technicians": [tech(), tech("CD5678")]})
    first = await db.orders.add_escalation("AB1234", None, "help", "ladder too short")
    second = await db.orders.add_escalation("AB1234", "ORD-1", "order", "dog")
    await db.orders.add_escalation("CD5678", None, "help", "rain")
    assert (first, second) == ("ESC-0001", "ESC-0002")
    assert await db.orders.count_escalations("AB1234", within=3600) == 2
    assert await db.orders.count_escalations("ab1234", within=3600) == 2
    listed = await db.orders.escalations("AB1234")
    assert [(e["escalation_id"], e["reason"]) for e in listed] == [
        ("ESC-0001", "ladder too short"),
        ("ESC-0002", "dog"),
    ]
    assert datetime.fromisoformat(listed[0]["created_at"]).tzinfo is not None
    assert len(await db.orders.escalations()) == 3
    newest = await db.orders.escalations(newest_first=True, limit=2)
    assert [e["escalation_id"] for e in newest] == ["ESC-0003", "ESC-0002"]


async def test_an_escalation_keeps_its_context_and_moves_only_as_allowed(db: Handle) -> None:
    await import_data(db.orders, {"technicians": [tech()], "orders": [order("ORD-1")]})
    escalation_id = await db.orders.add_escalation(
        "AB1234",
        "ORD-1",
        "order",
        "no light",
        session_key="techassist:web:::AB1234",
        step="light_levels",
        step_no=3,
        step_of=7,
        words="the fiber is dark",
        params={"fsan": "ALCL90ABCDEF", "wifi_password": "••••"},
    )
    row = await db.orders.get_escalation(escalation_id.lower())
    assert row is not None
    assert (row["status"], row["step"], row["step_no"], row["step_of"]) == (
        "open",
        "light_levels",
        3,
        7,
    )
    assert row["params"] == {"fsan": "ALCL90ABCDEF", "wifi_password": "••••"}
    assert (row["words"], row["session_key"]) == ("the fiber is dark", "techassist:web:::AB1234")
    assert await db.orders.get_escalation("ESC-9999") is None
    assert await db.orders.get_escalation("not an id") is None
    move = db.orders.move_escalation
    assert await move(escalation_id, "answered", "ana", allowed=("taken",), taker_only=True) is None
    taken = await move(escalation_id, "taken", "ana", allowed=("open",), taker_only=False)
    assert taken is not None and (taken["status"], taken["operator"]) == ("taken", "ana")
    assert await move(escalation_id, "taken", "bob", allowed=("open",), taker_only=False) is None
    assert (
        await move(
            escalation_id, "answered", "bob", allowed=("taken",), taker_only=True, answer="x"
        )
        is None
    )
    answered = await move(
        escalation_id, "answered", "ANA", allowed=("taken",), taker_only=True, answer="clean it"
    )
    assert answered is not None and answered["answer"] == "clean it"
    closed = await move(
        escalation_id, "closed", "ana", allowed=("answered",), taker_only=True, outcome="closed"
    )
    assert closed is not None and (closed["answer"], closed["outcome"]) == ("clean it", "closed")
    assert [e["escalation_id"] for e in await db.orders.escalations(status="closed")] == [
        escalation_id
    ]
    assert await db.orders.escalations(status="open") == []


async def test_of_two_instances_taking_one_escalation_exactly_one_succeeds(
    opener: Opener,
) -> None:
    first, second = await opener(), await opener()
    await import_data(first.orders, {"technicians": [tech()]})
    escalation_id = await first.orders.add_escalation("AB1234", None, "help", "ladder")
    results = await asyncio.gather(
        *(
            handle.orders.move_escalation(
                escalation_id, "taken", name, allowed=("open",), taker_only=False
            )
            for handle, name in ((first, "ana"), (second, "bob"))
        )
    )
    assert sum(result is not None for result in results) == 1


async def test_operators_are_stored_by_name_in_any_case(db: Handle) -> None:
    assert await db.orders.list_operators() == []
    await db.orders.put_operator("Ana", "hash-1")
    await db.orders.put_operator("bob", "hash-2")
    await db.orders.put_operator("ANA", "hash-3")
    assert await db.orders.list_operators() == ["Ana", "bob"]
    assert await db.orders.operator_hash("ana") == "hash-3"
    assert await db.orders.operator_hash("carol") is None
    assert await db.orders.remove_operator("ANA")
    assert not await db.orders.remove_operator("ana")
    assert await db.orders.list_operators() == ["bob"]


async def test_an_orders_audit_rows_are_found_in_any_case_of_its_id(db: Handle) -> None:
    for order_id in ("ORD-1", "ORD-2", "ord-1"):
        await db.audit.record_call(
            "s", order_id, "step", 1, 1, "tool", {"a": 1}, True, None, {"ok": True}, 1.5
        )
    rows = await db.audit.order_rows("Ord-1")
    assert [row["order_id"] for row in rows] == ["ORD-1", "ord-1"]
    assert rows[0]["args"] == {"a": 1} and rows[0]["duration_ms"] == 1.5


# -- credentials


async def test_a_credential_is_used_once_and_burnt_by_failures(db: Handle) -> None:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)
    await db.orders.add_credential("d1", "ab1234", "code", now, later)
    with pytest.raises(WorkOrderError):
        await db.orders.add_credential("d1", "AB1234", "code", now, later)
    assert await db.orders.credential("d1", "code", now) == ("d1", "AB1234")
    assert await db.orders.credential("d1", "token", now) is None
    assert await db.orders.credential("d1", "code", later) is None
    assert await db.orders.use_credential("d1", "code", now, 5)
    assert not await db.orders.use_credential("d1", "code", now, 5)
    await db.orders.add_credential("d2", "AB1234", "code", now, later)
    for _ in range(2):
        await db.orders.credential_failed("ab1234", "code", now)
    assert not await db.orders.use_credential("d2", "code", now, 2)
    assert await db.orders.purge_credentials(now) == 1
    await db.orders.add_credential("t1", "AB1234", "token", now, later)
    await db.orders.add_credential("t2", "AB1234", "token", now, later)
    assert await db.orders.revoke_credential("t1", "token")
    assert not await db.orders.revoke_credential("t1", "token")
    assert await db.orders.revoke_credentials("ab1234", "token") == 1
    assert await db.orders.purge_credentials(later) == 1


async def test_of_two_concurrent_uses_of_a_credential_one_succeeds(opener: Opener) -> None:
    first, second = await opener(), await opener()
    now = datetime.now(UTC)
    await first.orders.add_credential("d1", "AB1234", "code", now, now + timedelta(minutes=5))
    used = await asyncio.gather(
        first.orders.use_credential("d1", "code", now, 5),
        second.orders.use_credential("d1", "code", now, 5),
    )
    assert sorted(used) == [False, True]


# -- the audit


async def test_a_success_is_found_only_for_its_exact_call(db: Handle) -> None:
    async def record(step: str, attempt: int, ok: bool, order_id: str | None = "ORD-1") -> None:
        await db.audit.record_call(
            "s1", order_id, step, attempt, 1, "activate_ont", {"fsan": "X", "n": 1}, ok,
            None if ok else "transient", {"ont_id": f"{step}-{attempt}"}, 1.5,
        )  # fmt: skip

    await record("line", 1, ok=False)
    await record("line", 2, ok=True)
    await record("other", 3, ok=True, order_id=None)
    assert await db.audit.find_success("s1", "ORD-1", "line", 1) is None
    assert await db.audit.find_success("s1", "ORD-1", "line", 2) == {"ont_id": "line-2"}
    assert await db.audit.find_success("s1", None, "other", 3) == {"ont_id": "other-3"}
    assert await db.audit.find_success("s1", "ORD-1", "other", 3) is None
    args = {"n": 1, "fsan": "X"}
    assert await db.audit.find_success("s1", "ORD-1", "line", 2, "activate_ont", args)
    assert not await db.audit.find_success("s1", "ORD-1", "line", 2, "replace_equipment", args)
    assert not await db.audit.find_success("s1", "ORD-1", "line", 2, "activate_ont", {"n": 2})
    rows = await db.audit.audit_rows("s1")
    assert [(r["step_id"], r["ok"], r["args"]) for r in rows] == [
        ("line", False, {"fsan": "X", "n": 1}),
        ("line", True, {"fsan": "X", "n": 1}),
        ("other", True, {"fsan": "X", "n": 1}),
    ]
    assert datetime.fromisoformat(rows[0]["at"]).tzinfo is not None
    assert await db.audit.audit_rows("nobody") == []


async def test_the_database_answers_a_ping(db: Handle) -> None:
    await db.orders.ping()
