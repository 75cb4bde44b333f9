"""Faults the served simulator injects per endpoint, so HTTP tools meet real failures.

A fault table maps an operation (the name of the tool that calls it, e.g.
``activate_ont``) to a ``Fault``. It comes from ``TECHASSIST_SIM_FAULTS`` (JSON)
or from the admin endpoint, e.g.::

    {"run_speed_test": {"error_rate": 0.1},
     "activate_ont": {"timeout_rate": 1, "after_effect": true, "times": 1}}

Each request to a faulty endpoint draws one number from a random generator
seeded by ``TECHASSIST_SIM_SEED`` and the operation, so a sequence of requests
meets the same faults on every run.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

#: The operations the served simulator answers: the names of the tools that call them.
Operation = Literal[
    "activate_ont",
    "check_light_levels",
    "configure_wifi",
    "run_speed_test",
    "run_line_test",
    "replace_equipment",
    "confirm_customer_online",
    "escalate",
]

Outcome = Literal["ok", "error", "timeout", "reset", "down"]


class Fault(BaseModel):
    """How one endpoint misbehaves. The three rates share one draw, so they add up to 1 at most."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, le=600_000)
    """Delay before every answer."""
    error_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of requests answered with ``error_status``."""
    error_status: int = Field(default=503, ge=500, le=599)
    """The 5xx status of an injected error."""
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of requests left unanswered until the client gives up (or ``hang_seconds``)."""
    reset_rate: float = Field(default=0.0, ge=0, le=1)
    """Fraction of requests whose connection is reset, with no answer."""
    after_effect: bool = False
    """Errors, timeouts and resets strike after the action was done: the effect happened
    but its answer is lost; the case an ``Idempotency-Key`` is for."""
    times: int | None = Field(default=None, ge=0)
    """At most this many errors, timeouts and resets; then the endpoint is healthy."""
    flap_calls: int | None = Field(default=None, ge=1)
    """Up for this many requests, then down (503) for as many, and so on."""
    flap_seconds: float | None = Field(default=None, gt=0)
    """Up for this many seconds, then down (503) for as long, and so on."""
    hang_seconds: float = Field(default=30.0, gt=0, le=3600)
    """How long a timed-out request waits for its client to give up before a 504."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.error_rate + self.timeout_rate + self.reset_rate > 1:
            raise ValueError("error_rate + timeout_rate + reset_rate must be 1 at most")
        if self.flap_calls is not None and self.flap_seconds is not None:
            raise ValueError("give flap_calls or flap_seconds, not both")
        return self


class FaultTable(RootModel[dict[Operation, Fault]]):
    """Faults by operation; an operation left out is healthy."""


class FaultSpecError(ValueError):
    """A fault table that cannot be used; the message names each problem with its JSON path."""


def parse_faults(text: str) -> dict[str, Fault]:
    """A fault table from JSON text; an empty text is no faults."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FaultSpecError(
            f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    return validate_faults(data)


def validate_faults(data: Any) -> dict[str, Fault]:
    """A fault table from decoded JSON, or FaultSpecError naming each bad value's JSON path."""
    try:
        table = FaultTable.model_validate(data).root
    except ValidationError as exc:
        raise FaultSpecError("; ".join(problems(exc))) from None
    return {str(operation): fault for operation, fault in table.items()}


def problems(exc: ValidationError) -> list[str]:
    """Each validation error as ``/json/path: message``."""
    return [f"{json_path(error['loc'])}: {error['msg']}" for error in exc.errors()]


def json_path(loc: Sequence[int | str]) -> str:
    """A pydantic error location as a JSON Pointer (``[key]``, pydantic's mark for a bad
    dict key, left out: the key itself names the place)."""
    return "/" + "/".join(str(part) for part in loc if part != "[key]")


@dataclass(frozen=True)
class Decision:
    """What happens to one request: its latency, and its outcome unless ``ok``."""

    outcome: Outcome
    latency: float = 0.0
    after_effect: bool = False
    status: int = 503
    hang: float = 30.0


HEALTHY = Decision("ok")


class FaultInjector:
    """Decides, request by request, which fault strikes; reproducible from the seed."""

    def __init__(
        self,
        table: Mapping[str, Fault],
        seed: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seed = seed
        self._clock = clock
        self.replace(table)

    @property
    def table(self) -> dict[str, Fault]:
        """The faults in force, by operation."""
        return dict(self._table)

    def replace(self, table: Mapping[str, Fault]) -> None:
        """Put a new table in force; its draws, counts and flapping start afresh."""
        self._table = dict(table)
        self._random: dict[str, random.Random] = {}
        self._requests: Counter[str] = Counter()
        self._struck: Counter[str] = Counter()
        self._since = self._clock()

    def decide(self, operation: str) -> Decision:
        """The fate of the next request to ``operation``."""
        fault = self._table.get(operation)
        if fault is None:
            return HEALTHY
        self._requests[operation] += 1
        latency = fault.latency_ms / 1000
        if self._down(operation, fault):
            return Decision("down", latency)
        draw = self._generator(operation).random()  # drawn every time: a stable sequence
        outcome: Outcome = "ok"
        if draw < fault.error_rate:
            outcome = "error"
        elif draw < fault.error_rate + fault.timeout_rate:
            outcome = "timeout"
        elif draw < fault.error_rate + fault.timeout_rate + fault.reset_rate:
            outcome = "reset"
        if outcome != "ok" and fault.times is not None and self._struck[operation] >= fault.times:
            outcome = "ok"
        if outcome != "ok":
            self._struck[operation] += 1
        return Decision(
            outcome, latency, fault.after_effect, fault.error_status, fault.hang_seconds
        )

    def _generator(self, operation: str) -> random.Random:
        if operation not in self._random:
            self._random[operation] = random.Random(f"{self._seed}:{operation}")
        return self._random[operation]

    def _down(self, operation: str, fault: Fault) -> bool:
        """Whether a flapping endpoint is in a down phase; every endpoint starts up."""
        if fault.flap_calls is not None:
            phase = (self._requests[operation] - 1) // fault.flap_calls
        elif fault.flap_seconds is not None:
            phase = int((self._clock() - self._since) / fault.flap_seconds)
        else:
            return False
        return phase % 2 == 1
