"""Structured ``when`` conditions for plan steps: data that is evaluated, never ``eval``'d.

A condition is one of::

    {"value": "diagnosis_code", "op": "in", "arg": ["ONT_FAULT", "POWER"]}
    {"value": "ont_id", "op": "exists"}
    {"all": [<condition>, ...]}      {"any": [<condition>, ...]}      {"not": <condition>}

A value that is missing (absent or ``None``) makes every comparison false, so
``ne`` and ``not_in`` are false too; ``exists`` is the way to ask about presence.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

ComparisonOp = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "exists"]

# Pydantic puts the tag of a tagged union into an error's location. The angle
# brackets keep tags apart from real keys, so a JSON path can drop them.
_COMPARISON = "<comparison>"
_ALL = "<all>"
_ANY = "<any>"
_NOT = "<not>"
_TAGS = frozenset({_COMPARISON, _ALL, _ANY, _NOT})
_ORDERED_OPS = frozenset({"gt", "ge", "lt", "le"})


class Comparison(BaseModel):
    """Compares one stored value with ``arg``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: str = Field(min_length=1, description="Name of a stored value.")
    op: ComparisonOp
    arg: Any = Field(
        default=None,
        description="A list for in/not_in, a number for gt/ge/lt/le, absent for exists.",
    )

    @model_validator(mode="after")
    def _check_arg(self) -> Comparison:
        if self.op == "exists":
            if self.arg is not None:
                raise ValueError("'exists' takes no 'arg'")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.arg, list):
                raise ValueError(f"'{self.op}' needs a list as 'arg'")
        elif self.op in _ORDERED_OPS:
            if not _is_number(self.arg):
                raise ValueError(f"'{self.op}' needs a number as 'arg'")
        elif self.arg is None:
            raise ValueError(f"'{self.op}' needs an 'arg'")
        return self


class AllOf(BaseModel):
    """True when every inner condition is true."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all: list[Condition] = Field(min_length=1)


class AnyOf(BaseModel):
    """True when at least one inner condition is true."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    any: list[Condition] = Field(min_length=1)


class Not(BaseModel):
    """True when the inner condition is false."""

    # `not` is a keyword, so the field needs an alias; dumping by alias keeps a
    # plan snapshot loadable again.
    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, validate_by_name=True
    )

    not_: Condition = Field(alias="not")


def _condition_tag(data: Any) -> str | None:
    if isinstance(data, BaseModel):
        return {Comparison: _COMPARISON, AllOf: _ALL, AnyOf: _ANY, Not: _NOT}.get(type(data))
    if not isinstance(data, dict):
        return None
    for key, tag in (("all", _ALL), ("any", _ANY), ("not", _NOT)):
        if key in data:
            return tag
    return _COMPARISON


Condition = Annotated[
    Annotated[Comparison, Tag(_COMPARISON)]
    | Annotated[AllOf, Tag(_ALL)]
    | Annotated[AnyOf, Tag(_ANY)]
    | Annotated[Not, Tag(_NOT)],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message=(
            "a condition is an object with 'value' and 'op', or with 'all', 'any' or 'not'"
        ),
    ),
]

AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def is_union_tag(part: str | int) -> bool:
    """Whether a part of a pydantic error location is a condition tag, not a real key."""
    return isinstance(part, str) and part in _TAGS


def evaluate(condition: Condition, values: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds for the stored ``values``."""
    if isinstance(condition, AllOf):
        return all(evaluate(inner, values) for inner in condition.all)
    if isinstance(condition, AnyOf):
        return any(evaluate(inner, values) for inner in condition.any)
    if isinstance(condition, Not):
        return not evaluate(condition.not_, values)
    return _compare(condition, values.get(condition.value))


def references(condition: Condition, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(value name, JSON path)`` for every value the condition reads.

    ``path`` is the condition's own path; the yielded paths extend it.
    """
    if isinstance(condition, (AllOf, AnyOf)):
        key = "all" if isinstance(condition, AllOf) else "any"
        inner = condition.all if isinstance(condition, AllOf) else condition.any
        for index, item in enumerate(inner):
            yield from references(item, f"{path}.{key}[{index}]")
    elif isinstance(condition, Not):
        yield from references(condition.not_, f"{path}.not")
    else:
        yield condition.value, f"{path}.value"


def _compare(condition: Comparison, actual: Any) -> bool:
    op, arg = condition.op, condition.arg
    if op == "exists":
        return actual is not None
    if actual is None:
        return False
    if op == "eq":
        return _equal(actual, arg)
    if op == "ne":
        return not _equal(actual, arg)
    if op == "in":
        return any(_equal(actual, item) for item in arg)
    if op == "not_in":
        return not any(_equal(actual, item) for item in arg)
    if not (_is_number(actual) and _is_number(arg)):
        return False
    if op == "gt":
        return bool(actual > arg)
    if op == "ge":
        return bool(actual >= arg)
    if op == "lt":
        return bool(actual < arg)
    return bool(actual <= arg)


def _equal(left: Any, right: Any) -> bool:
    # Python says True == 1; a yes/no answer should never equal a count.
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    return bool(left == right)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )
