"""The tool audit: every try of every tool call, and the successes a replayed turn reuses.

It belongs to the inner agent (``orchestrator_core.inner_agent``), which records
each try and, before running a tool with side effects, asks whether exactly that
call already succeeded: a turn replayed after a crash then repeats no side effect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

# One encoder each rather than json.dumps(..., default=str): dumps builds a new
# encoder on every call that passes options, and the audit encodes on every tool call.
_AUDIT_ARGS = json.JSONEncoder(default=str, sort_keys=True)
AUDIT_RESULT = json.JSONEncoder(default=str)


KEY_FIELD = "idempotency_key"
"""Where a try's recorded result keeps a keyed call's idempotency key (beside the
outputs or the message); a replay leaves it out of the outputs it answers with."""


def audit_json(args: Mapping[str, Any]) -> str:
    """The one text form of a call's arguments in the audit, so equal calls compare equal."""
    return _AUDIT_ARGS.encode(args)


class AuditLog(Protocol):
    """The append-only record of tool calls.

    Callers: the inner agent (``record_call`` for every try, ``find_success``
    before a tool with side effects); tests and the benches read ``audit_rows``.
    Implementations keep rows in the order recorded, and raise WorkOrderError on
    a database failure (the inner agent then only logs).
    """

    async def record_call(
        self,
        session_id: str,
        order_id: str | None,
        step_id: str,
        attempt: int,
        try_no: int,
        tool: str,
        args: Mapping[str, Any] | str,
        ok: bool,
        error_kind: str | None,
        result: dict[str, Any],
        duration_ms: float,
    ) -> None:
        """Append one tool try; ``args`` must already be masked.

        ``args`` may also be given as its ``audit_json`` text, which the caller
        may have made already (to look for an earlier success).
        """

    async def find_success(
        self,
        session_id: str,
        order_id: str | None,
        step_id: str,
        attempt: int,
        tool: str | None = None,
        args: Mapping[str, Any] | str | None = None,
    ) -> dict[str, Any] | None:
        """The outputs of the latest success recorded for exactly this call slot, if any.

        With ``tool`` and ``args`` (masked, as recorded), only a success of that
        tool with those arguments counts: a call slot reused by a different call
        (after a turn that was never saved) must not get someone else's outputs.
        ``args`` may also be given as its ``audit_json`` text.
        """

    async def audit_rows(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Rows, oldest first, with args and result decoded and ``ok`` a bool."""

    async def order_rows(self, order_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The rows of one order (any case of its id), oldest first, decoded as ``audit_rows``."""

    async def aclose(self) -> None:
        """Release what this log holds alone (one sharing a connection releases nothing)."""


__all__ = ["AUDIT_RESULT", "KEY_FIELD", "AuditLog", "audit_json"]
