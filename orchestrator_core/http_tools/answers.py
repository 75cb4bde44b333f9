"""Reading an error answer as the tool file declares it: refused, a fault on site, or failed.

Each rule matches by status and, optionally, by values in the body (``when``),
and only when its message is there: an answer that matches no rule is a
misconfiguration, which the runtime reports. Messages are the system's own
words, trimmed, with any sensitive input the system echoed masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator_core.errors import ArgumentRefused, FieldFault, ToolFailed
from orchestrator_core.http_tools.spec import Answer, HttpTool
from orchestrator_core.http_tools.templates import PointerMissing, resolve
from orchestrator_core.params import MASK

#: Longest message from a system shown to a technician, in characters.
MAX_MESSAGE = 300

_NOTHING = object()


def classify(
    tool: HttpTool, status: int, document: Any, arguments: Mapping[str, Any]
) -> ToolFailed | None:
    """The failure a declared rule gives this answer, or None when no rule matches."""
    refused, fault, failed = tool.refused, tool.fault, tool.failed
    if refused is not None and _matches(refused, status, document):
        message = _text(document, refused.message)
        if message:
            named = _names(document, refused.arguments, set(tool.inputs)) or refused.inputs
            choices = _names(document, refused.choices, None)
            return ArgumentRefused(_hide(message, tool, arguments), named, choices=choices)
    if fault is not None and _matches(fault, status, document):
        message = _text(document, fault.message)
        remedy, confirm = _text(document, fault.remedy), _text(document, fault.confirm)
        if message and remedy and confirm:
            retry = _at(document, fault.retry_args) if fault.retry_args else {}
            changes = retry if isinstance(retry, dict) else {}
            retry_args = {k: v for k, v in changes.items() if k in tool.inputs}
            return FieldFault(
                _hide(message, tool, arguments),
                remedy=remedy,
                confirm=confirm,
                retry_args=retry_args,
            )
    if failed is not None and _matches(failed, status, document):
        message = _text(document, failed.message)
        if message:
            return ToolFailed(_hide(message, tool, arguments))
    return None


def _matches(rule: Answer, status: int, document: Any) -> bool:
    if status not in rule.status:
        return False
    return all(_at(document, pointer) == value for pointer, value in rule.when.items())


def _at(document: Any, pointer: str) -> Any:
    try:
        return resolve(document, pointer)
    except PointerMissing:
        return _NOTHING


def _text(document: Any, pointer: str) -> str:
    """The text at ``pointer``, on one line and trimmed; empty when there is none."""
    value = _at(document, pointer)
    if not isinstance(value, str) or not value.strip():
        return ""
    text = " ".join(value.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _names(document: Any, pointer: str | None, allowed: set[str] | None) -> list[str]:
    """The strings of the list at ``pointer`` (only ``allowed`` ones when given)."""
    if pointer is None:
        return []
    value = _at(document, pointer)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str) and (allowed is None or v in allowed)]


def _hide(message: str, tool: HttpTool, arguments: Mapping[str, Any]) -> str:
    """The message with any sensitive input the system echoed replaced by the mask."""
    for name in tool.sensitive:
        value = arguments.get(name)
        if value is not None and str(value):
            message = message.replace(str(value), MASK)
    return message


__all__ = ["MAX_MESSAGE", "classify"]
