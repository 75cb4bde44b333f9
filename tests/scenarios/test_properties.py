"""Properties: whatever a technician types, in any state, the conversation holds together."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.wiring import Services, build
from bridges.memory import MemoryBridge
from orchestrator_core.orchestrator import SORRY
from tests.conftest import make_settings

# Scripts that bring a fresh conversation to each state worth probing.
PREFIXES = {
    "identify": [],
    "confirm": ["AB1234"],
    "pick": ["AB1234", "no"],
    "collect": ["AB1234", "yes"],
    "collect_later": ["AB1234", "yes", "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2"],
    "tool_failed": ["AB1234", "yes", "fsan=ALCL00000000 model=716GE ethernet_port=1"],
    "post_task": [
        "AB1234",
        "yes",
        "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2",
        "skip",
        "yes",
    ],
    "repair": ["CD5678", "yes"],
}

WORDS = st.sampled_from(
    [
        "yes",
        "no",
        "1",
        "2",
        "none",
        "retry",
        "edit",
        "keep",
        "skip",
        "escalate",
        "try again",
        "next",
        "help",
        "end",
        "orders",
        "status",
        "back",
        "{'fsan': 'x'}",
        "fsan=",
        "=",
        "{",
        "[]",
        "{'ethernet_port': 9}",
        "model=716GE",
        "ONT_FAULT",
        "\x00",
        " ",
        "é" * 3,
        "1e309",
        "-0",
    ]
)
MESSAGES = st.lists(st.one_of(st.text(max_size=40), WORDS), min_size=1, max_size=8)

_users = itertools.count()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    # Synchronous on purpose: hypothesis runs the test body many times, each in asyncio.run.
    built = asyncio.run(build(make_settings(tmp_path, store="memory")))
    try:
        yield built
    finally:
        asyncio.run(built.aclose())


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=st.sampled_from(sorted(PREFIXES)), messages=MESSAGES)
def test_any_messages_in_any_state_never_break_the_conversation(
    services: Services, start: str, messages: list[str]
) -> None:
    """Arbitrary text never raises, never loses a stored value, and status always answers."""
    asyncio.run(_probe(services, start, messages))


async def _probe(services: Services, start: str, messages: list[str]) -> None:
    cuid = "CD5678" if start == "repair" else "AB1234"
    chat = MemoryBridge(services.orchestrator, f"prop-{next(_users)}")
    await chat.start()
    for line in PREFIXES[start]:
        await chat.say(line)
    for text in messages:
        before = await services.sessions.get_session_data(chat.key)
        replies = await chat.say(text)
        assert replies, f"no reply to {text!r}"
        assert all(r.text != SORRY for r in replies), f"internal error on {text!r}"
        after = await services.sessions.get_session_data(chat.key)
        if after is None:
            # Nothing is stored for a conversation that has not identified.
            assert before is None, f"{text!r} lost the session"
            continue
        if (
            before is not None
            and before.order
            and after.order
            and before.order.order_id == after.order.order_id
        ):
            # A sensitive value leaves the session once its step is done.
            spent = after.plan.sensitive_names() if after.plan else frozenset()
            lost = set(before.values) - set(after.values) - spent
            assert not lost, f"{text!r} lost {lost}"
        if chat.closed:
            await chat.start(cuid)
    status = await chat.say("status")
    assert status[0].kind.value == "display"
    assert "Technician:" in status[0].text or "haven't identified" in status[0].text
