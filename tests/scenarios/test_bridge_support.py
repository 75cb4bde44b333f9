"""What the core offers bridges: account mapping, progress lines, repeat detection."""

from __future__ import annotations

from bot.wiring import Services
from orchestrator_core.turns import IncomingTurn, SessionKey
from tests.scenarios.helpers import said


async def test_chat_accounts_map_to_technicians_by_slack_id_or_email(services: Services) -> None:
    find = services.orchestrator.technician_for
    assert await find(slack_user_id="U0ALICE") == "AB1234"
    assert await find(slack_user_id="UNKNOWN", email="Carlos.Diaz@example.com") == "CD5678"
    assert await find(slack_user_id="UNKNOWN", email="nobody@example.com") is None
    assert await find() is None


async def test_a_slow_step_announces_itself_before_its_tool_runs(services: Services) -> None:
    key = SessionKey("memory", "", "", "progress")
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    await services.orchestrator.handle(IncomingTurn(key, cuid="AB1234"), progress=progress)
    await services.orchestrator.handle(IncomingTurn(key, text="yes"), progress=progress)
    await services.orchestrator.handle(
        IncomingTurn(key, text="fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2"),
        progress=progress,
    )
    assert lines == [
        "Fetching the order details…",
        "Activating the ONT…",
        "Checking the light levels…",
    ]


async def test_a_repeated_message_is_answered_from_memory_and_says_so(services: Services) -> None:
    key = SessionKey("memory", "", "", "repeat")
    orchestrator = services.orchestrator
    await orchestrator.handle(IncomingTurn(key, cuid="AB1234", message_id="a"))
    first = await orchestrator.handle_turn(IncomingTurn(key, text="yes", message_id="b"))
    again = await orchestrator.handle_turn(IncomingTurn(key, text="yes", message_id="b"))
    assert not first.replayed and again.replayed
    assert again.replies == first.replies and "Starting ORD-1003" in said(again.replies)
