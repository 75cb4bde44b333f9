"""The phase table: every phase has its question, vocabulary and handler, and every answer a
question offers is one its phase accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bridges.memory import MemoryBridge
from orchestrator_core.dispatch import Dispatch
from orchestrator_core.phases import PHASES
from orchestrator_core.phases.commands import COMMANDS
from orchestrator_core.session import Phase
from orchestrator_core.turns import Reply
from tests.conftest import ServicesFactory
from tests.scenarios.helpers import question, said

Path_ = Callable[[MemoryBridge], Awaitable[list[Reply]]]


def test_every_phase_has_exactly_one_spec() -> None:
    assert set(PHASES) == set(Phase)
    for phase, spec in PHASES.items():
        assert spec.phase is phase and callable(spec.question) and callable(spec.handle)


def test_every_vocabulary_accepts_the_choices_it_offers() -> None:
    for spec in [*PHASES.values()]:
        if spec.vocabulary is not None:
            for choice in spec.vocabulary.choices:
                assert spec.vocabulary.match(choice.upper()) == choice, (spec.phase, choice)
    for choice in COMMANDS.choices:
        assert COMMANDS.match(f"  {choice} ") == choice


async def confirm(chat: MemoryBridge) -> list[Reply]:
    return await chat.start("AB1234")


async def pick(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    return await chat.say("no")


async def model_choice(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    return await chat.say("ALCL90ABCDEF")


async def boolean_value(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    return await chat.say("ssid=Home wifi_password=kettle-on-tuesday")


async def tool_failed(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    return await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")


async def dirty_connector(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    return await chat.say("fsan=ALCLC0FFEE02 model=G-240W-F ethernet_port=2")


async def offer_escalation(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    await chat.say("x")
    await chat.say("y")
    return await chat.say("z")


async def post_task(chat: MemoryBridge) -> list[Reply]:
    await confirm(chat)
    await chat.say("yes")
    return await chat.say("escalate")


async def idle(chat: MemoryBridge) -> list[Reply]:
    await pick(chat)
    return await chat.say("none")


async def handed_back(chat: MemoryBridge) -> list[Reply]:
    await post_task(chat)
    agent = chat.orchestrator.agent
    dispatch = Dispatch(chat.orchestrator, agent.context.db, agent.audit)
    [escalation] = await dispatch.queue("open")
    await dispatch.take(escalation.id, "ana")
    await dispatch.hand_back(escalation.id, "ana")
    return await chat.say("status")


PATHS: dict[str, tuple[Path_, Phase]] = {
    "confirm": (confirm, Phase.CONFIRM_ORDER),
    "pick": (pick, Phase.PICK_ORDER),
    "model choice": (model_choice, Phase.COLLECT),
    "yes/no value": (boolean_value, Phase.COLLECT),
    "tool failed": (tool_failed, Phase.TOOL_FAILED),
    "dirty connector": (dirty_connector, Phase.TOOL_FAILED),
    "offer escalation": (offer_escalation, Phase.OFFER_ESCALATION),
    "post task": (post_task, Phase.POST_TASK),
    "idle": (idle, Phase.IDLE),
    "handed back": (handed_back, Phase.OFFER_HANDBACK),
}


@pytest.mark.parametrize("name", PATHS)
async def test_every_offered_choice_is_understood(
    name: str, make_services: ServicesFactory, tmp_path: Path
) -> None:
    path, phase = PATHS[name]
    # On the way to "tool failed" the light check does not answer, and not on a retry either.
    settings = {"sim_failures": "check_light_levels:99"} if path is tool_failed else {}
    probe = await make_services(data_dir=tmp_path / "probe", **settings)
    chat = MemoryBridge(probe.orchestrator, "AB1234")
    choices = question(await path(chat)).choices
    session = await probe.sessions.get_session_data(chat.key)
    assert session is not None and session.phase is phase
    assert choices
    for index, choice in enumerate(choices):
        services = await make_services(data_dir=tmp_path / str(index), **settings)
        chat = MemoryBridge(services.orchestrator, "AB1234")
        await path(chat)
        answered = await chat.say(choice)
        assert "Please answer" not in said(answered), (name, choice, said(answered))
        assert "isn't valid" not in said(answered), (name, choice, said(answered))
