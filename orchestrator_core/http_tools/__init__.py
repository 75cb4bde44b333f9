"""HTTP tools an integrator declares in a file, and the runtime that calls them.

``spec`` holds the file's models and checks, ``load`` reads the file and the
environment, ``runtime`` turns each declared tool into a ``ToolSpec`` that the
inner agent runs like a built-in one.
"""

from orchestrator_core.http_tools.load import load_tools_file, resolve_headers
from orchestrator_core.http_tools.runtime import (
    HostCheck,
    HttpToolRuntime,
    declared_registry,
    tool_specs,
)
from orchestrator_core.http_tools.spec import HttpTool, ToolsFile, tools_json_schema

__all__ = [
    "HostCheck",
    "HttpTool",
    "HttpToolRuntime",
    "ToolsFile",
    "declared_registry",
    "load_tools_file",
    "resolve_headers",
    "tool_specs",
    "tools_json_schema",
]
