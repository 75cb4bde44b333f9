"""Reading a tools file (YAML or JSON) and the environment its secret headers come from.

Every problem is reported at once, each with the file and a JSON path, as plan
files report theirs. Secret header values are read from the environment when
TechAssist starts (``resolve_headers``), so a missing variable stops the start
naming it, rather than the first call failing mid-conversation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator_core.errors import ToolsFileError
from orchestrator_core.http_tools.spec import (
    ENV_REFERENCE,
    Header,
    ToolsFile,
    file_problems,
    header_path,
)
from orchestrator_core.plans import pydantic_problems

YAML_SUFFIXES = frozenset({".yaml", ".yml"})


def load_tools_file(path: Path) -> ToolsFile:
    """The tools file at ``path``, checked; ToolsFileError listing every problem."""
    shown = str(path)
    data = _read(path, shown)
    try:
        tools_file = ToolsFile.model_validate(data)
    except ValidationError as exc:
        found = pydantic_problems(exc)
        raise ToolsFileError([f"{shown}: {at}: {msg}" for at, msg in found]) from None
    problems = file_problems(tools_file)
    if problems:
        raise ToolsFileError([f"{shown}: {at}: {message}" for at, message in problems])
    return tools_file


def _read(path: Path, shown: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolsFileError([f"{shown}: $: cannot read the file: {exc}"]) from None
    if path.suffix.lower() in YAML_SUFFIXES:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "not YAML"
            raise ToolsFileError([f"{shown}: $: invalid YAML{where}: {problem}"]) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ToolsFileError(
                [f"{shown}: $: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
            ) from None
        except RecursionError:
            raise ToolsFileError([f"{shown}: $: invalid JSON: nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ToolsFileError([f"{shown}: $: a tools file is an object with a 'tools' key"])
    return data


def resolve_headers(
    tools_file: ToolsFile, environ: Mapping[str, str], source: str = "the tools file"
) -> dict[str, dict[str, str]]:
    """Each tool's headers with ``${NAME}`` filled from ``environ``, by tool name.

    ToolsFileError names every variable that is unset or empty, and where it is used;
    the values themselves are never part of a message.
    """
    resolved: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for tool_name, tool in tools_file.tools.items():
        headers: dict[str, str] = {}
        for name, header in tool.headers.items():
            template = header.value if isinstance(header, Header) else header
            for variable in ENV_REFERENCE.findall(template):
                if not environ.get(variable):
                    problems.append(
                        f"{source}: {header_path(tool_name, name)}: the environment variable "
                        f"{variable} is not set; set it to the header's value before starting"
                    )
            headers[name] = ENV_REFERENCE.sub(lambda m: environ.get(m.group(1), ""), template)
        resolved[tool_name] = headers
    if problems:
        raise ToolsFileError(problems)
    return resolved


__all__ = ["load_tools_file", "resolve_headers"]
