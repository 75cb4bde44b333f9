"""Structured step conditions: parsing, evaluation, and what a missing value means."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from orchestrator_core.conditions import AllOf, Comparison, Condition, Not, evaluate, references

CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def cond(data: Any) -> Condition:
    return CONDITION.validate_python(data)


@pytest.mark.parametrize(
    ("data", "values", "expected"),
    [
        ({"value": "code", "op": "eq", "arg": "ONT_FAULT"}, {"code": "ONT_FAULT"}, True),
        ({"value": "code", "op": "eq", "arg": "ONT_FAULT"}, {"code": "NO_FAULT"}, False),
        ({"value": "code", "op": "ne", "arg": "ONT_FAULT"}, {"code": "NO_FAULT"}, True),
        ({"value": "code", "op": "in", "arg": ["ONT_FAULT", "POWER"]}, {"code": "POWER"}, True),
        ({"value": "code", "op": "in", "arg": ["ONT_FAULT", "POWER"]}, {"code": "OTHER"}, False),
        ({"value": "code", "op": "not_in", "arg": ["ONT_FAULT"]}, {"code": "OTHER"}, True),
        ({"value": "rx", "op": "gt", "arg": -25}, {"rx": -20.5}, True),
        ({"value": "rx", "op": "ge", "arg": -25}, {"rx": -25}, True),
        ({"value": "rx", "op": "lt", "arg": -25}, {"rx": -20.5}, False),
        ({"value": "rx", "op": "le", "arg": -25.0}, {"rx": -25}, True),
        ({"value": "ont_id", "op": "exists"}, {"ont_id": "ONT-1"}, True),
        ({"value": "ont_id", "op": "exists"}, {"ont_id": None}, False),
    ],
)
def test_comparisons(data: dict[str, Any], values: dict[str, Any], expected: bool) -> None:
    """Each operator compares the stored value with its argument."""
    assert evaluate(cond(data), values) is expected


@pytest.mark.parametrize("op", ["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le"])
def test_a_missing_value_makes_every_comparison_false(op: str) -> None:
    """Absent or None, a value fails every comparison, even ne and not_in."""
    arg: Any = ["x"] if op in ("in", "not_in") else 1
    condition = cond({"value": "code", "op": op, "arg": arg})
    assert evaluate(condition, {}) is False
    assert evaluate(condition, {"code": None}) is False


def test_exists_is_false_for_a_missing_value() -> None:
    """'exists' is how a plan asks whether a value is there."""
    assert evaluate(cond({"value": "ont_id", "op": "exists"}), {}) is False


def test_ordering_ops_are_false_for_non_numbers() -> None:
    """gt on text or a yes/no answer is false rather than an error."""
    condition = cond({"value": "v", "op": "gt", "arg": 1})
    assert evaluate(condition, {"v": "5"}) is False
    assert evaluate(condition, {"v": True}) is False


def test_a_boolean_never_equals_a_number() -> None:
    """True is not 1 here, unlike in Python."""
    assert evaluate(cond({"value": "v", "op": "eq", "arg": 1}), {"v": True}) is False
    assert evaluate(cond({"value": "v", "op": "in", "arg": [True]}), {"v": True}) is True


def test_all_any_not_combine() -> None:
    """all, any and not nest to any depth."""
    condition = cond(
        {
            "all": [
                {"value": "light_ok", "op": "eq", "arg": True},
                {"any": [{"value": "a", "op": "exists"}, {"value": "b", "op": "exists"}]},
                {"not": {"value": "code", "op": "eq", "arg": "NO_FAULT_FOUND"}},
            ]
        }
    )
    assert isinstance(condition, AllOf)
    assert evaluate(condition, {"light_ok": True, "b": 1, "code": "ONT_FAULT"}) is True
    assert evaluate(condition, {"light_ok": True, "code": "ONT_FAULT"}) is False
    assert evaluate(condition, {"light_ok": True, "a": 1, "code": "NO_FAULT_FOUND"}) is False


def test_not_of_a_missing_comparison_is_true() -> None:
    """Negating a comparison on a missing value gives true: the comparison was false."""
    assert evaluate(cond({"not": {"value": "x", "op": "eq", "arg": 1}}), {}) is True


def test_references_name_each_value_with_its_path() -> None:
    """references() reports every value a condition reads, with a JSON path."""
    condition = cond(
        {"any": [{"value": "a", "op": "exists"}, {"not": {"value": "b", "op": "exists"}}]}
    )
    assert list(references(condition, "$.when")) == [
        ("a", "$.when.any[0].value"),
        ("b", "$.when.any[1].not.value"),
    ]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"value": "a", "op": "in", "arg": "x"}, "needs a list"),
        ({"value": "a", "op": "gt", "arg": "5"}, "needs a number"),
        ({"value": "a", "op": "exists", "arg": 1}, "takes no 'arg'"),
        ({"value": "a", "op": "eq"}, "needs an 'arg'"),
        ({"value": "a", "op": "like", "arg": 1}, "Input should be"),
        ({"value": "a", "op": "eq", "arg": 1, "extra": 2}, "Extra inputs"),
        ({"all": []}, "at least 1"),
        ("diagnosis_code == 'ONT_FAULT'", "a condition is an object"),
    ],
)
def test_bad_conditions_are_validation_errors(data: Any, fragment: str) -> None:
    """A malformed condition fails validation; it is never evaluated as code."""
    with pytest.raises(ValidationError, match=fragment):
        cond(data)


def test_a_condition_survives_a_dump_and_reload() -> None:
    """Plan snapshots dump conditions; 'not' keeps its JSON name."""
    condition = cond({"not": {"all": [{"value": "a", "op": "in", "arg": [1, 2]}]}})
    dumped = CONDITION.dump_python(condition, mode="json")
    assert dumped == {"not": {"all": [{"value": "a", "op": "in", "arg": [1, 2]}]}}
    assert cond(dumped) == condition
    assert isinstance(condition, Not) and isinstance(condition.not_, AllOf)
    assert isinstance(condition.not_.all[0], Comparison)
