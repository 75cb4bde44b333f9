"""The inner agent: runs one tool call safely and says how it went, never raising.

For each call it validates and coerces the arguments against the tool's
signature, applies a timeout to every try, retries transient failures of
idempotent tools with a short backoff, and records every try in the audit
table with sensitive arguments masked. A failure's ``error_kind`` says what can
fix it (see ``ToolResult``). A call whose (session, order, step,
attempt) already succeeded is answered from the audit without running the
tool again, so a turn replayed after a crash repeats no side effect.

A tool may bring its own retry policy and timeout (``ToolSpec.retry``,
``ToolSpec.timeout``), and arguments it declares sensitive itself. For a keyed
tool (one that sends an idempotency key, like a declared HTTP tool) the key is
made here from (session, order, step, tool, arguments), without the attempt, so
a technician's own retry sends the same key as the automatic ones; each try's
audit row keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from orchestrator_core.audit import KEY_FIELD, AuditLog, audit_json
from orchestrator_core.errors import (
    ArgumentRefused,
    FieldFault,
    ToolFailed,
    TransientToolError,
    Unavailable,
)
from orchestrator_core.observe import NO_OBSERVER, Observer
from orchestrator_core.tools import (
    ToolContext,
    ToolRegistry,
    ToolSpec,
    call_key,
    reset_call_key,
    set_call_key,
)

log = logging.getLogger("techassist.inner_agent")

ErrorKind = Literal[
    "failed",
    "refused",
    "fault",
    "transient",
    "timeout",
    "bad_arguments",
    "unknown_tool",
    "internal",
]
MASK = "***"


class ToolResult(BaseModel):
    """How a tool call went: outputs on success, an error kind and a plain message otherwise.

    The error kinds, by what can fix them:

    - ``refused``: the tool refused the values of the arguments in ``refused``
      (``choices``: the accepted values, when there is a fixed set); entering
      them again can fix it, retrying as is cannot;
    - ``bad_arguments``: the arguments did not fit the tool's signature; ``refused``
      names the missing or invalid ones (``choices`` as above);
    - ``fault``: something on site; after ``remedy`` the technician answers
      ``confirm`` and the tool is called again with its arguments updated by
      ``retry_args``;
    - ``transient``, ``timeout``: trying again may help (already retried for
      idempotent tools);
    - ``failed``: nothing the technician enters or retries fixes it;
    - ``unknown_tool``, ``internal``: a bug or a misconfiguration.
    """

    ok: bool
    outputs: dict[str, Any] = Field(default_factory=dict)
    error_kind: ErrorKind | None = None
    message: str = ""
    """For the technician: says what failed and why, in plain words."""
    refused: tuple[str, ...] = ()
    """Tool argument names whose values were refused, missing or invalid."""
    choices: tuple[str, ...] = ()
    """The values accepted for the refused argument, when it takes a fixed set."""
    remedy: str = ""
    """What the technician can do on site about a ``fault``."""
    confirm: str = ""
    """The word the technician answers once ``remedy`` is done."""
    retry_args: dict[str, Any] = Field(default_factory=dict)
    """Arguments to change when calling the tool again after ``remedy``."""
    attempts: int = 0
    """Tries actually made: 0 when the tool did not run (bad arguments, a replay)."""
    duration_ms: float = 0.0
    replayed: bool = False
    """True when the outputs come from the audit of an earlier identical call."""

    @property
    def transient(self) -> bool:
        """Trying again as is may help: a transient failure, a timeout or an internal error."""
        return self.error_kind in ("transient", "timeout", "internal")


@dataclass(frozen=True)
class CallContext:
    """Where a call belongs, which makes it recognisable when a turn is replayed.

    ``attempt`` must change whenever the caller means a new call (a retry the
    technician asked for, new values): the same (session_id, order_id, step_id,
    attempt) that once succeeded is answered from the audit. ``sensitive``
    names arguments (and outputs) that are masked in the audit and the logs.
    ``audit=False`` records nothing: for read-only lookups made before anyone is
    identified (a CUID typed by whoever connected), which must leave no trace.
    """

    session_id: str
    order_id: str | None
    step_id: str
    attempt: int
    sensitive: frozenset[str] = frozenset()
    audit: bool = True


def _mask(values: Mapping[str, Any], sensitive: frozenset[str]) -> dict[str, Any]:
    return {k: (MASK if k in sensitive else v) for k, v in values.items()}


def _invalid_arguments(spec: ToolSpec, exc: ValidationError) -> tuple[str, ...]:
    """The tool's own arguments that a validation error found missing or invalid, in order."""
    names: list[str] = []
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else ""
        if name in spec.accepted and name not in names:
            names.append(name)
    return tuple(names)


def _choices_for(spec: ToolSpec, arguments: tuple[str, ...]) -> tuple[str, ...]:
    """The fixed values of the one refused argument, if it has them."""
    if len(arguments) != 1:
        return ()
    return tuple(spec.choices.get(arguments[0], ()))


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


class InnerAgent:
    """Runs tools from ``registry`` against ``context`` with validation, timeouts and retries."""

    def __init__(
        self,
        registry: ToolRegistry,
        context: ToolContext,
        audit: AuditLog,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        backoff: float = 0.05,
        observer: Observer = NO_OBSERVER,
        key_secret: bytes | None = None,
    ) -> None:
        """``key_secret``: what idempotency keys are made with (``call_key``); instances that
        share sessions must share it, so a call retried on another one sends the same key.
        ``None``: a key of this process's own."""
        self.observer = observer
        self.key_secret = os.urandom(32) if key_secret is None else key_secret
        self.registry = registry
        self.context = context
        self.audit = audit
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    async def execute_task(
        self, tool: str, args: Mapping[str, Any], call: CallContext
    ) -> ToolResult:
        """Run ``tool`` with ``args`` for ``call``; every outcome is a ToolResult."""
        began = time.perf_counter()
        result = await self._execute_safely(tool, args, call)
        self.observer.tool_call(tool, time.perf_counter() - began, result.error_kind)
        return result

    async def _execute_safely(
        self, tool: str, args: Mapping[str, Any], call: CallContext
    ) -> ToolResult:
        try:
            return await self._execute(tool, args, call)
        except Unavailable:
            # The work-order database is down or restarting: the whole turn stops unsaved,
            # and the technician is told to send it again (see ``Orchestrator``).
            raise
        except Exception:
            # Only a bug here (not in a tool) gets this far; the conversation goes on.
            spec = self.registry.get(tool)
            sensitive = call.sensitive | (spec.sensitive if spec is not None else frozenset())
            log.exception("inner agent failed around %s (args %s)", tool, _mask(args, sensitive))
            return ToolResult(
                ok=False,
                error_kind="internal",
                message=f"An internal error occurred while running {tool}",
            )

    async def _execute(self, tool: str, args: Mapping[str, Any], call: CallContext) -> ToolResult:
        spec = self.registry.get(tool)
        if spec is None:
            masked = audit_json(_mask(args, call.sensitive))
            message = f"There is no tool called {tool!r}."
            await self._record(call, 0, tool, masked, None, "unknown_tool", message, 0.0)
            return ToolResult(ok=False, error_kind="unknown_tool", message=message)

        if spec.sensitive:
            call = replace(call, sensitive=call.sensitive | spec.sensitive)
        # The masked arguments as the audit keeps them: made once, for the replay check and
        # for every try's record.
        masked = audit_json(_mask(args, call.sensitive))
        recorded = None
        if not spec.read_only:
            recorded = await self.audit.find_success(
                call.session_id,
                call.order_id,
                call.step_id,
                call.attempt,
                tool=spec.name,
                args=masked,
            )
        if recorded is not None:
            log.info(
                "replaying %s for %s step %s attempt %s from the audit",
                tool,
                call.session_id,
                call.step_id,
                call.attempt,
            )
            recorded.pop(KEY_FIELD, None)
            return ToolResult(ok=True, outputs=recorded, replayed=True)

        try:
            validated = spec.args_model.model_validate(dict(args))
        except ValidationError as exc:
            message = self._bad_arguments(spec, exc, call.sensitive)
            await self._record(call, 0, tool, masked, None, "bad_arguments", message, 0.0)
            refused = _invalid_arguments(spec, exc)
            return ToolResult(
                ok=False,
                error_kind="bad_arguments",
                message=message,
                refused=refused,
                choices=_choices_for(spec, refused),
            )
        kwargs = {name: getattr(validated, f"arg_{name}") for name in spec.accepted}
        key = None
        if spec.keyed:
            key = call_key(
                call.session_id, call.order_id, call.step_id, spec.name, kwargs, self.key_secret
            )
        token = set_call_key(key)
        try:
            return await self._run(spec, kwargs, masked, call, key)
        finally:
            reset_call_key(token)

    async def _run(
        self,
        spec: ToolSpec,
        kwargs: dict[str, Any],
        masked: str,
        call: CallContext,
        key: str | None,
    ) -> ToolResult:
        retries = spec.retry.retries if spec.retry is not None else self.retries
        tries = 1 + (max(retries, 0) if spec.idempotent else 0)
        timeout = spec.timeout or self.timeout
        started = time.perf_counter()
        kind: ErrorKind = "internal"
        message = ""
        failure: ToolFailed | None = None
        for try_no in range(1, tries + 1):
            begun = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    outputs = await spec.func(self.context, **kwargs)
                if not isinstance(outputs, dict):
                    raise TypeError(f"tool {spec.name} returned {type(outputs).__name__}, not dict")
            except TransientToolError as exc:
                kind, message, failure = "transient", str(exc), exc
            except ArgumentRefused as exc:
                kind, message, failure = "refused", str(exc), exc
            except FieldFault as exc:
                kind, message, failure = "fault", str(exc), exc
            except ToolFailed as exc:
                kind, message, failure = "failed", str(exc), exc
            except TimeoutError:
                kind, message = "timeout", ""
            except Unavailable:
                raise
            except Exception:
                log.exception("tool %s raised (args %s)", spec.name, masked)
                kind, message = "internal", ""
            else:
                took = (time.perf_counter() - begun) * 1000
                await self._record(call, try_no, spec.name, masked, outputs, None, "", took, key)
                return ToolResult(
                    ok=True,
                    outputs=outputs,
                    attempts=try_no,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            took = (time.perf_counter() - begun) * 1000
            await self._record(call, try_no, spec.name, masked, None, kind, message, took, key)
            if kind not in ("transient", "timeout") or try_no == tries:
                break
            retry_now = not isinstance(failure, TransientToolError) or failure.retry_now
            if kind == "transient" and not retry_now:
                break  # e.g. an open circuit breaker: trying again at once cannot help
            log.info("tool %s try %d/%d: %s; retrying", spec.name, try_no, tries, kind)
            delay = spec.retry.delay(try_no) if spec.retry else self.backoff * 2 ** (try_no - 1)
            await asyncio.sleep(delay)
        result = ToolResult(
            ok=False,
            error_kind=kind,
            message=self._failure_text(spec, kind, message, try_no, timeout),
            attempts=try_no,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        if isinstance(failure, ArgumentRefused) and kind == "refused":
            refused = failure.arguments
            choices = failure.choices or _choices_for(spec, refused)
            result = result.model_copy(update={"refused": refused, "choices": choices})
        elif isinstance(failure, FieldFault) and kind == "fault":
            result = result.model_copy(
                update={
                    "remedy": failure.remedy,
                    "confirm": failure.confirm,
                    "retry_args": dict(failure.retry_args),
                }
            )
        return result

    def _failure_text(
        self, spec: ToolSpec, kind: ErrorKind, message: str, tries: int, timeout: float
    ) -> str:
        after = f" after {tries} tries" if tries > 1 else ""
        if kind == "internal":
            return f"An internal error occurred while running {spec.name}"
        if kind == "timeout":
            return f"{spec.action} timed out{after}: no answer within {timeout:g} seconds."
        return f"{spec.action} failed{after}: {_sentence(message)}"

    @staticmethod
    def _bad_arguments(spec: ToolSpec, exc: ValidationError, sensitive: frozenset[str]) -> str:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(part) for part in err["loc"]) or "arguments"
            if err["type"] == "missing":
                problems.append(f"{name} is missing")
            elif err["type"] == "extra_forbidden":
                problems.append(f"{name} is not an argument of {spec.name}")
            elif name in sensitive:
                problems.append(f"{name}: {err['msg']}")  # never echo a secret
            else:
                problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        return f"{spec.action} failed: bad arguments: " + "; ".join(problems) + "."

    async def _record(
        self,
        call: CallContext,
        try_no: int,
        tool: str,
        masked: str,
        outputs: dict[str, Any] | None,
        error_kind: str | None,
        message: str,
        duration_ms: float,
        key: str | None = None,
    ) -> None:
        """Audit one try (try_no 0: refused before running); a failing audit only logs.

        ``masked`` is the call's masked arguments as ``audit_json`` text; ``key`` a
        keyed call's idempotency key, kept beside the outputs or the message.
        """
        if not call.audit:
            return
        result = _mask(outputs, call.sensitive) if outputs is not None else {"message": message}
        if key is not None:
            result[KEY_FIELD] = key
        try:
            await self.audit.record_call(
                call.session_id,
                call.order_id,
                call.step_id,
                call.attempt,
                try_no,
                tool,
                masked,
                outputs is not None,
                error_kind,
                result,
                duration_ms,
            )
        except Unavailable as exc:
            log.warning("could not audit %s for %s: %s", tool, call.session_id, exc)
        except Exception:
            log.exception("could not audit %s for %s", tool, call.session_id)


__all__ = ["CallContext", "ErrorKind", "InnerAgent", "KEY_FIELD", "MASK", "ToolResult"]
