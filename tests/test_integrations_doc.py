"""The integration guide's examples are tools files the real loader accepts.

An integrator copies these snippets: one that the loader refused would teach a
mistake. The step-by-step snippets, read in order, make one tool; the last block
is a whole file. Both are loaded, and their secret headers resolved, as at start.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from orchestrator_core.errors import ToolsFileError
from orchestrator_core.http_tools import load_tools_file, resolve_headers
from orchestrator_core.http_tools.spec import Breaker

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "integrations.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
ENVIRON = {"PROVISIONING_TOKEN": "t0ken", "PROVISIONING_TENANT": "north"}


def blocks() -> list[str]:
    return BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


def load(text: str, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    resolve_headers(load_tools_file(path), ENVIRON, str(path))


def test_the_step_by_step_snippets_make_one_tool_the_loader_accepts(tmp_path: Path) -> None:
    steps = [b for b in blocks() if b.startswith(("tools:", "    "))]
    assert steps[0].startswith("tools:") and len(steps) >= 6
    load("".join(steps), tmp_path, "steps.yaml")


def test_the_whole_file_example_loads_and_its_breakers_are_valid(tmp_path: Path) -> None:
    whole = [b for b in blocks() if "\ntools:\n" in b]
    assert len(whole) == 1
    load(whole[0], tmp_path, "whole.yaml")
    breakers = [b for b in blocks() if b.startswith("breaker:") and "\ntools:" not in b]
    for text in breakers:
        data = yaml.safe_load(text)
        Breaker.model_validate(data["breaker"])
        for breaker in data.get("hosts", {}).values():
            Breaker.model_validate(breaker)


def test_the_whole_file_example_needs_its_token_at_start(tmp_path: Path) -> None:
    (whole,) = [b for b in blocks() if "\ntools:\n" in b]
    path = tmp_path / "whole.yaml"
    path.write_text(whole, encoding="utf-8")
    with pytest.raises(ToolsFileError, match="PROVISIONING_TOKEN is not set"):
        resolve_headers(load_tools_file(path), {}, str(path))
