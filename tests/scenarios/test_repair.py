"""Repair conversations, with and without the conditional equipment replacement."""

from __future__ import annotations

from bot.wiring import Services
from bridges.memory import MemoryBridge
from tests.scenarios.helpers import question, said

# CD5678's most urgent order is ORD-2001, a repair of an ONT that keeps rebooting.
TOP = "ORD-2001"


async def start_top_repair(services: Services) -> MemoryBridge:
    chat = MemoryBridge(services.orchestrator, "CD5678")
    proposal = await chat.start("CD5678")
    assert TOP in question(proposal).text
    started = await chat.say("yes")
    text = said(started)
    assert "ONT keeps rebooting" in text and "Line test:" in text
    assert question(started).needs == "diagnosis_code"
    return chat


async def test_a_repair_with_an_ont_fault_replaces_the_equipment(services: Services) -> None:
    chat = await start_top_repair(services)
    asked = await chat.say("ont_fault")
    assert question(asked).needs == "new_serial"
    done = await chat.say("CXNK00778899")
    text = said(done)
    assert "ONT replaced" in text and "CXNK00778899" in text and "CXNK0000BAD1" in text
    assert "Line retest" in text and f"Order {TOP} is closed" in text
    assert question(done).choices == ["next", "help", "end"]
    old = await services.workorders.get_inventory("CXNK0000BAD1")
    new = await services.workorders.get_inventory("CXNK00778899")
    assert old is not None and old.status == "faulty"
    assert new is not None and new.status == "installed"
    order = await services.workorders.get_order(TOP)
    assert order is not None and order.status == "completed"


async def test_a_repair_without_a_hardware_fault_skips_the_replacement(services: Services) -> None:
    chat = await start_top_repair(services)
    done = await chat.say("CONFIG_ERROR")
    text = said(done)
    assert "not needed" in text and "ONT replaced" not in text
    assert f"Order {TOP} is closed" in text
    old = await services.workorders.get_inventory("CXNK0000BAD1")
    assert old is not None and old.status == "installed"


async def test_a_diagnosis_outside_the_choices_is_refused(services: Services) -> None:
    chat = await start_top_repair(services)
    refused = await chat.say("it's broken")
    assert "isn't valid" in said(refused)
    assert "ONT_FAULT" in question(refused).choices
