"""The README's transcripts are what the program prints: each is replayed against the
real server with the real client, and the screen must read exactly as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from orchestrator_core.plans import Plan, check_plan, plan_warnings
from orchestrator_core.tools import default_registry
from tests.bot.live import environment
from tests.bridges.server import running

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- transcript: python client.py -->"
PROMPT = re.compile(r"Your CUID: |^> ", re.MULTILINE)


def transcripts() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for chunk in readme.split(MARKER)[1:]:
        block = chunk.split("```\n", 1)[1].split("```", 1)[0]
        found.append(block.removeprefix("$ python client.py\n"))
    return found


def replayed(stdout: str, inputs: list[str]) -> str:
    """The client's output with each input shown after the prompt it answered."""
    shown, rest = "", stdout
    for line in inputs:
        prompt = PROMPT.search(rest)
        assert prompt is not None, f"no prompt left for {line!r} in:\n{rest}"
        shown += rest[: prompt.end()] + line + "\n"
        rest = rest[prompt.end() :]
    return shown + rest


def test_the_readme_shows_a_transcript() -> None:
    assert transcripts(), f"README.md has no block marked {MARKER}"


def test_every_readme_transcript_is_what_the_client_prints(tmp_path: Path) -> None:
    for index, transcript in enumerate(transcripts()):
        inputs = [m.group(1) for m in re.finditer(r"(?:Your CUID: |^> )(.*)$", transcript, re.M)]
        data_dir = tmp_path / str(index)
        data_dir.mkdir()
        with running(data_dir) as server:
            done = subprocess.run(
                [sys.executable, "client.py", "--url", server.url],
                input="".join(f"{line}\n" for line in inputs),
                capture_output=True,
                text=True,
                timeout=60,
                env=environment(),
                cwd=ROOT,
            )
        assert done.returncode == 0, done.stderr
        assert replayed(done.stdout, inputs) == transcript


def test_the_readme_plan_example_is_a_valid_plan_without_warnings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("A plan looks like this", 1)[1].split("```json\n", 1)[1]
    plan = check_plan(Plan.model_validate_json(example.split("```", 1)[0]), default_registry())
    assert [step.id for step in plan.steps] == ["activate_ont", "speed_test"]
    assert plan_warnings(plan) == []
