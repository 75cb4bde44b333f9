"""A notice to a technician by CUID reaches their session however many others spoke since."""

from __future__ import annotations

from bot.wiring import Services
from bridges.memory import MemoryBridge

#: More conversations than the most recently saved sessions a scan would look through (1000).
CROWD = 1200


async def test_a_dispatchers_answer_reaches_a_technician_quiet_behind_many_others(
    services: Services,
) -> None:
    orchestrator = services.orchestrator
    quiet = MemoryBridge(orchestrator, "quiet")
    await quiet.say("AB1234")
    # Then the rest of the field: other technicians' conversations, all saved after the
    # quiet technician's last word.
    for n in range(CROWD):
        await MemoryBridge(orchestrator, f"van-{n}").say("CD5678" if n % 2 else "EF9012")
    assert quiet.key.as_str() not in [s.key for s in await services.store.scan()]

    assert await orchestrator.notify("AB1234", "Use port 2", kind="answer") == quiet.key
    [notice] = await orchestrator.take_notices(quiet.key)
    assert (notice.kind, notice.text) == ("answer", "Use port 2")
    # And on the technician's next turn, nothing is left waiting.
    await quiet.say("status")
    assert await orchestrator.take_notices(quiet.key) == []


async def test_the_technicians_latest_conversation_wins_among_their_sessions(
    services: Services,
) -> None:
    orchestrator = services.orchestrator
    phone = MemoryBridge(orchestrator, "phone")
    laptop = MemoryBridge(orchestrator, "laptop")
    await phone.say("AB1234")
    await laptop.say("AB1234")
    await phone.say("status")
    for n in range(CROWD):
        await MemoryBridge(orchestrator, f"van-{n}").say("EF9012")
    assert phone.key.as_str() not in [s.key for s in await services.store.scan()]
    assert await orchestrator.notify("AB1234", "Use port 2") == phone.key
    assert await orchestrator.take_notices(laptop.key) == []
    assert [n.text for n in await orchestrator.take_notices(phone.key)] == ["Use port 2"]


async def test_a_shared_device_signed_in_by_another_technician_is_theirs(
    services: Services,
) -> None:
    orchestrator = services.orchestrator
    tablet = MemoryBridge(orchestrator, "shared-tablet")
    await tablet.say("AB1234")
    for text in ("no", "none", "end"):  # no order today: the conversation ends
        await tablet.say(text)
    said = await tablet.start("CD5678")  # the next technician signs in on the same device
    assert "Hi Carlos Diaz!" in said[0].text
    assert await orchestrator.notify("AB1234", "for the first") is None
    assert await orchestrator.notify("CD5678", "for the second") == tablet.key
    assert [n.text for n in await orchestrator.take_notices(tablet.key)] == ["for the second"]
