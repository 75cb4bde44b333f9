"""The arguments model of a declared tool, checked as a plan checks its parameters.

Each input is validated by ``params.validate_value``, the same rules (types,
limits, patterns, choices) and the same plain reasons a technician gets for a
plan parameter. Fields are named ``arg_<input>`` with the input as alias, as
``tools.args_model_for`` names them, so the inner agent reads both alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from orchestrator_core.http_tools.spec import ToolInput
from orchestrator_core.params import Invalid, validate_value


def _checker(spec: ToolInput) -> Callable[[Any], Any]:
    def check(raw: Any) -> Any:
        if raw is None and not spec.required:
            return None
        result = validate_value(spec, raw)
        if isinstance(result, Invalid):
            raise ValueError(result.reason)
        return result.value

    return check


def arguments_model(tool: str, inputs: Mapping[str, ToolInput]) -> type[BaseModel]:
    """A model that validates and coerces ``inputs``; unknown arguments are refused."""
    fields: dict[str, Any] = {}
    for name, spec in inputs.items():
        default = ... if spec.required else None
        fields[f"arg_{name}"] = (
            Annotated[Any, BeforeValidator(_checker(spec))],
            Field(default, alias=name),
        )
    config = ConfigDict(extra="forbid", protected_namespaces=())
    model: type[BaseModel] = create_model(f"{tool}_arguments", __config__=config, **fields)
    return model


__all__ = ["arguments_model"]
