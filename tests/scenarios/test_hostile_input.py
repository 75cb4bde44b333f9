"""What a stranger can type costs a turn little and breaks nothing.

The timing test is the one timed assertion the suite allows: a fixed set of
hostile messages, each sent in a fresh session through the memory bridge, and
the CPU time of that one turn (``time.thread_time``, the best of three runs
so that a busy machine does not make it flaky) must stay under 10 ms.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.orchestrator import MAX_TEXT, UNREADABLE
from plans import PLANS_DIR
from tests.conftest import ServicesFactory
from tests.scenarios.helpers import question, said

TURN_CPU_LIMIT = 0.010

_KEYS_700 = "{" + ", ".join(f"'k{i}': {i}" for i in range(700)) + "}"

HOSTILE: dict[str, str] = {
    "json nested 1000 deep": "[" * 1000 + "]" * 1000,
    "object nested 1000 deep": '{"a":' * 1000 + "1" + "}" * 1000,
    "8 KB of {": "{" * 8000,
    "dict literal nested 2000 deep": "{'a':" * 1600 + "1" + "}" * 1600,
    "700-key dict literal, 8 KB": _KEYS_700[: MAX_TEXT - 2] + "}",
    "700-key JSON object": "{" + ",".join(f'"{i}":1' for i in range(700)) + "}",
    "2000 key=value pairs": " ".join("a=1" for _ in range(2000)),
    "pair with 4000 escaped quotes, unclosed": 'a="' + '\\"' * 4000,
    "dict literal with 4000 escaped quotes, unclosed": '{"' + '\\"' * 4000,
    "8 KB key without a value": "a" * 8000,
    "list of 4000 items": "{'a': [" + "1," * 4000 + "]}",
    "set of 4000 items": "{" + "1," * 4000 + "}",
    "8000-digit number": "9" * 8000,
    "9**99999 as text": "9**99999",
    "dict with an 8000-digit number": "{'fsan': " + "9" * 8000 + "}",
    "float with a 4000-digit exponent": "{'a': 1e" + "9" * 4000 + "}",
    "full-width confusables": "ＡＬＣＬ１Ａ２Ｂ３Ｃ４Ｄ" * 300,
    "zero-width and right-to-left marks": "\u200b\u202e" * 2000,
    "lone surrogates": "\ud800" * 100 + "fsan=\udfff",
    "16 KB message": "x" * 16000,
    "8 KB of newlines": "\n" * 8000,
    "28 characters against ^(a|a)*$": "a" * 27 + "!",
}


def _install_plan(tmp_path: Path, pattern: str) -> Path:
    """The bundled plans, with the ONT serial's pattern replaced by ``pattern``."""
    directory = tmp_path / f"plans-{abs(hash(pattern))}"
    directory.mkdir()
    for source in PLANS_DIR.glob("*.json"):
        data = json.loads(source.read_text(encoding="utf-8"))
        if source.name == "installation.json":
            data["parameters"]["fsan"]["pattern"] = pattern
            data["parameters"]["fsan"].pop("normalize", None)
        (directory / source.name).write_text(json.dumps(data), encoding="utf-8")
    return directory


async def _at(services: Services, phase: str, user: str) -> MemoryBridge:
    """A fresh conversation, stopped at ``phase``."""
    chat = MemoryBridge(services.orchestrator, user)
    if phase == "identify":
        await chat.start()
    else:
        await chat.start("AB1234")
        if phase == "collect":
            assert question(await chat.say("yes")).needs == "fsan"
    return chat


async def _cpu_of_one_turn(
    services: Services, phase: str, text: str, users: Iterator[int]
) -> float:
    best = float("inf")
    for _ in range(3):
        chat = await _at(services, phase, f"hostile-{next(users)}")
        started = time.thread_time()
        await chat.say(text)
        best = min(best, time.thread_time() - started)
    return best


async def test_no_hostile_message_costs_a_turn_10_ms_of_cpu(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    # The ONT serial's pattern is one that backtracks exponentially in Python's re.
    services = await make_services(plans_dir=_install_plan(tmp_path, "^(a|a)*$"))
    users = itertools.count()
    slow = {}
    for name, text in HOSTILE.items():
        for phase in ("identify", "confirm", "collect"):
            spent = await _cpu_of_one_turn(services, phase, text, users)
            if spent >= TURN_CPU_LIMIT:
                slow[f"{name} ({phase})"] = f"{spent * 1000:.1f} ms"
    assert not slow


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|a)*$"])
async def test_a_plan_pattern_that_backtracks_in_re_answers_at_once(
    make_services: ServicesFactory, tmp_path: Path, pattern: str
) -> None:
    """28 characters took Python's ``re`` seconds on these patterns; RE2 takes no time."""
    services = await make_services(plans_dir=_install_plan(tmp_path, pattern))
    spent = await _cpu_of_one_turn(services, "collect", "a" * 27 + "!", itertools.count())
    assert spent < TURN_CPU_LIMIT, f"{spent * 1000:.1f} ms"
    chat = await _at(services, "collect", "tech")
    assert "does not match the expected format" in said(await chat.say("a" * 27 + "!"))
    assert question(await chat.say("a" * 28)).needs == "model"  # the pattern still works


@pytest.mark.parametrize("phase", ["identify", "confirm", "collect"])
async def test_a_lone_surrogate_is_refused_and_the_session_is_kept(
    make_services: ServicesFactory, phase: str
) -> None:
    services = await make_services()  # SQLite: a save of such text used to fail
    chat = await _at(services, phase, "tech")
    asked = (await chat.say("status"))[-1]
    refused = await chat.say("ALCL\ud800" if phase != "identify" else "AB\udc00")
    assert UNREADABLE in said(refused)
    assert refused[-1].text == asked.text  # asked again, nothing changed
    after = await chat.say("status")
    assert after[-1].text == asked.text
    again = MemoryBridge(services.orchestrator, "tech")
    assert (await again.start())[-1].text == asked.text  # and it was saved


async def test_an_identifier_with_a_lone_surrogate_breaks_nothing(
    make_services: ServicesFactory,
) -> None:
    """A CUID, message id or user id that cannot be encoded is one that matches no one."""
    services = await make_services()
    chat = MemoryBridge(services.orchestrator, "user-\ud800")
    first = await chat.start("AB\ud800")
    assert first and first[-1].needs == "cuid"
    replies = await chat.say("AB1234", message_id="id-\udfff")
    assert "Alice Brown" in said(replies)
