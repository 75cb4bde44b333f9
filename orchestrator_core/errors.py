"""Every exception TechAssist raises on purpose, in one tree.

Adapters map the errors of the libraries they call (sqlite3, redis, slack_sdk)
onto these at the boundary, with ``raise ... from exc``, so callers never need
to know which backend or transport was underneath.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class TechAssistError(Exception):
    """The root of every error TechAssist raises on purpose."""


class ConfigError(TechAssistError):
    """A setting or a file the program depends on is missing or invalid."""


class StoreError(TechAssistError):
    """A session store could not load or save."""


class StaleVersionError(StoreError):
    """A save carried a version that is no longer the stored one."""

    def __init__(self, key: str, expected: int, actual: int | None) -> None:
        super().__init__(
            f"session {key!r} was saved by someone else: expected version {expected}, "
            f"store has {actual}"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class LockError(TechAssistError):
    """A per-session lock could not be acquired or was lost."""


class PlanError(TechAssistError):
    """A plan file is invalid. ``problems`` lists each one with its file and JSON path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class WorkOrderError(TechAssistError):
    """The work-order database refused an operation, or an import record is invalid."""


class ToolFailed(TechAssistError):
    """A tool could not do its job; the message is shown to the technician as is."""


class TransientToolError(ToolFailed):
    """A tool failed in a way that may succeed if tried again (network blip, busy system)."""


class ArgumentRefused(ToolFailed):
    """The tool refused the values of some of its arguments; new values can fix it, a retry not.

    ``arguments`` names the tool arguments, ``choices`` the values it accepts where
    it has a fixed set.
    """

    def __init__(self, message: str, arguments: Sequence[str], *, choices: Sequence[str] = ()):
        super().__init__(message)
        self.arguments = tuple(arguments)
        self.choices = tuple(choices)


class FieldFault(ToolFailed):
    """Something on site stops the tool that the technician can fix.

    After doing ``remedy`` the technician answers ``confirm``, and the tool is
    called again with ``retry_args`` added to its arguments.
    """

    def __init__(
        self, message: str, *, remedy: str, confirm: str, retry_args: Mapping[str, Any]
    ) -> None:
        super().__init__(message)
        self.remedy = remedy
        self.confirm = confirm
        self.retry_args = dict(retry_args)


class BridgeError(TechAssistError):
    """A transport (websocket, Slack) failed to deliver or receive."""
