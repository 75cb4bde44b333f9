"""Values the tool refuses count as bad values: three in a row offer escalation."""

from __future__ import annotations

from bot.wiring import Services
from bridges.memory import MemoryBridge
from tests.scenarios.helpers import question, said


async def test_three_serials_refused_in_a_row_offer_escalation(services: Services) -> None:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    await chat.start("AB1234")
    await chat.say("yes")
    first = await chat.say("fsan=ALCL00000000 model=716GE ethernet_port=1")
    assert "ALCL00000000 is not in inventory" in said(first)
    assert question(first).needs == "fsan"
    second = await chat.say("ALCL00000001")
    assert "ALCL00000001 is not in inventory" in said(second)
    assert question(second).needs == "fsan"
    offer = question(await chat.say("ALCL00000002"))
    assert offer.choices == ["try again", "escalate"], offer.text
    again = question(await chat.say("try again"))
    assert again.needs == "fsan" and "ALCL00000002 is not in inventory" in again.text
    done = await chat.say("CXNK00D4E5F6")
    assert "is active" in said(done)
