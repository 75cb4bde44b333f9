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


class KeyTooLong(TechAssistError, ValueError):
    """A ``SessionKey`` part, or the whole key, is longer than a store keeps.

    Raised when the key is built, so a bridge that builds keys from what a client
    sends (a websocket CUID frame) catches it and answers as for any identification
    that fails; nothing is stored under such a key.
    """


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


class Unavailable(TechAssistError):
    """The server behind a store or a lock cannot be reached right now (down, restarting).

    Nothing was read or written; the same call may succeed once the server is
    back, so the technician is told to send the message again, not that
    something broke.
    """


class StoreUnavailable(StoreError, Unavailable):
    """A session store's server cannot be reached."""


class LockUnavailable(LockError, Unavailable):
    """A lock's server cannot be reached: the lease is neither taken nor known to be lost."""


class PlanError(TechAssistError):
    """A plan file is invalid. ``problems`` lists each one with its file and JSON path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class WorkOrderError(TechAssistError):
    """The work-order database refused an operation, or an import record is invalid."""


class WorkOrdersUnavailable(WorkOrderError, Unavailable):
    """The work-order database's server cannot be reached."""


class InventoryConflict(WorkOrderError):
    """An inventory item was not in a status the move expected: someone else moved it first."""

    def __init__(self, serial: str, status: str) -> None:
        super().__init__(f"inventory item {serial!r} is {status}")
        self.serial = serial
        self.status = status


class ToolFailed(TechAssistError):
    """A tool could not do its job; the message is shown to the technician as is.

    Raised as such, the failure is permanent: nothing the technician can enter
    again or retry fixes it (only escalating, or skipping where the plan allows).
    The subclasses below say when something can.
    """


class TransientToolError(ToolFailed):
    """A tool failed in a way that may succeed if tried again (network blip, busy system).

    ``retry_now=False`` says trying again at once is pointless (a circuit breaker
    is open for a while): the inner agent then makes no automatic retry, and the
    technician still gets the retry way out for later.
    """

    def __init__(self, message: str, *, retry_now: bool = True) -> None:
        super().__init__(message)
        self.retry_now = retry_now


class ToolsFileError(ConfigError):
    """The tools file is invalid. ``problems`` lists each one with the file and JSON path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ArgumentRefused(ToolFailed):
    """The tool refused the values of some of its arguments; other values may work.

    ``arguments`` names the tool arguments whose values were refused (e.g.
    ``("fsan", "model")`` for a serial registered under another model);
    ``choices`` lists the accepted values when the tool takes a fixed set
    (e.g. the service tiers). Retrying with the same values cannot help;
    entering them again can.
    """

    def __init__(
        self, message: str, arguments: Sequence[str], *, choices: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.arguments: tuple[str, ...] = tuple(arguments)
        self.choices: tuple[str, ...] = tuple(choices)


class FieldFault(ToolFailed):
    """Something on site is wrong that the technician can fix, then try again.

    After doing ``remedy`` (e.g. "Clean and re-seat the fiber connector") the
    technician answers ``confirm`` (one word, e.g. "cleaned"), and the tool is
    called again with its arguments updated by ``retry_args`` (e.g.
    ``{"cleaned": True}``).
    """

    def __init__(
        self, message: str, *, remedy: str, confirm: str, retry_args: Mapping[str, Any]
    ) -> None:
        super().__init__(message)
        self.remedy = remedy
        self.confirm = confirm
        self.retry_args: dict[str, Any] = dict(retry_args)


class BridgeError(TechAssistError):
    """A transport (websocket, Slack) failed to deliver or receive."""
