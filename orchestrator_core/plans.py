"""Work plans: their models, loading and checking plan files, and a step's tool inputs.

A plan is data (``plans/*.json``). Loading checks everything that can be known
before a technician starts: the JSON, the shape, the tools and their
arguments, and that every value a step reads is provided by then. Each problem
names the file and a JSON path.

References, as written in a step's ``inputs`` (tool argument -> reference):

- ``order.<field>``: a field of the current order (any name; orders carry free details);
- ``cuid``: the technician's id, always available;
- a value name: a parameter of this or an earlier step, or an output of an earlier step.

Implicit inputs: a tool argument that has the same name as one of the step's
own parameters needs no entry in ``inputs``. Only the step's own parameters
count; a value from an earlier step is always mapped explicitly, so reading a
step tells where each argument comes from. Loading writes these implicit
mappings into ``Step.inputs``, so a loaded plan (and its session snapshot)
calls tools without needing the tool registry again.
"""

from __future__ import annotations

import json
import re
import string
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from orchestrator_core.conditions import Condition, is_union_tag, references
from orchestrator_core.errors import PlanError
from orchestrator_core.params import MASK, Parameter, ParamType, normalize_key

__all__ = [
    "LEGACY_TASK_TOOLS",
    "ORDER_FIELDS",
    "ParamType",
    "Parameter",
    "Plan",
    "PlanLibrary",
    "Step",
    "ToolCatalog",
    "ToolSignature",
    "check_files",
    "check_plan",
    "done_message",
    "json_path",
    "load_plan",
    "legacy_tool_for_task",
    "load_plans",
    "plan_json_schema",
    "plan_warnings",
    "pydantic_problems",
    "readable",
    "label",
    "order_value",
    "output_value",
    "step_inputs",
    "validate_files",
    "write_schema",
]

REQUIRED_ORDER_FIELDS = frozenset(
    {
        "order_id",
        "cuid",
        "order_type",
        "status",
        "scheduled_start",
        "created_at",
        "customer_name",
        "address",
    }
)
"""Fields every imported order has a value for."""

ORDER_FIELDS = REQUIRED_ORDER_FIELDS | {"scheduled_end", "service_tier"}
"""Fields every order may have. ``order.<anything>`` is allowed too: orders carry free details."""

NOT_RECORDED = "not recorded"
"""What a message shows for a value the data does not hold."""

CUID = "cuid"
ORDER_PREFIX = "order."
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PATH_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class ToolSignature(Protocol):
    """What plan checking needs to know about one tool."""

    @property
    def required(self) -> frozenset[str]: ...

    @property
    def accepted(self) -> frozenset[str]: ...


class ToolCatalog(Protocol):
    """Looks tools up by name; ``orchestrator_core.tools.ToolRegistry`` is one."""

    def get(self, name: str) -> ToolSignature | None: ...


class Step(BaseModel):
    """One thing the technician does: answer some questions, then maybe run a tool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    task: str = Field(min_length=1, description="What the step does, as the technician sees it.")
    parameters: list[str] = Field(
        default_factory=list, description="Parameters asked for before the tool runs."
    )
    tool: str | None = None
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Tool argument -> 'order.<field>', 'cuid' or the name of a value.",
    )
    outputs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Stored value name -> key of the tool's result, or a list of keys of "
        "which the first that has a value is stored (details differ from one system to another).",
    )
    fallbacks: dict[str, str] = Field(
        default_factory=dict,
        description="Tool argument -> parameter asked for when the order has no usable value "
        "for that argument (missing, empty, or one the tool does not accept).",
    )
    when: Condition | None = Field(
        default=None,
        description="Run the step only if this holds; it reads values from earlier steps.",
    )
    skippable: bool = False
    done: str | list[str] | None = Field(
        default=None,
        description="Success message; '{name}' is replaced by a value. A list of parts is "
        "joined as is; a part whose every value is unknown is left out.",
    )


class Plan(BaseModel):
    """The steps for one or more order types, and the parameters they ask for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Lets editors find plan.schema.json; it means nothing to the program.
    schema_ref: str | None = Field(default=None, alias="$schema", exclude=True)
    _sensitive: frozenset[str] = PrivateAttr(default=frozenset())
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    order_types: list[str] = Field(min_length=1)
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
            filled = {
                key: {"name": key, **value}
                if isinstance(value, dict) and "name" not in value
                else value
                for key, value in data["parameters"].items()
            }
            data = {**data, "parameters": filled}
        return data

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``; KeyError if the plan defines none."""
        try:
            return self.parameters[name]
        except KeyError:
            raise KeyError(f"plan {self.id!r} defines no parameter {name!r}") from None

    def sensitive_names(self) -> frozenset[str]:
        """Names of the values that are masked wherever they are shown."""
        return self._sensitive

    def model_post_init(self, context: Any, /) -> None:
        # Asked on every tool call; a plan's parameters never change once loaded.
        self._sensitive = frozenset(n for n, p in self.parameters.items() if p.sensitive)


@dataclass(frozen=True)
class PlanLibrary:
    """The loaded plans, each claiming its own order types."""

    plans: tuple[Plan, ...]

    def for_order_type(self, order_type: str) -> Plan | None:
        """The plan for an order type (case and surrounding spaces ignored), if any."""
        wanted = _order_type_key(order_type)
        for plan in self.plans:
            if any(_order_type_key(claimed) == wanted for claimed in plan.order_types):
                return plan
        return None


def step_inputs(
    plan: Plan,
    step: Step,
    values: Mapping[str, Any],
    order: Mapping[str, Any] | None,
    cuid: str | None,
) -> dict[str, Any]:
    """The arguments for ``step``'s tool, resolved from its ``inputs``; never raises.

    A reference whose value is missing (or ``None``) is left out: the tool's own
    argument check reports it. Fields absent from the order are looked up in
    ``order["details"]``. ``plan`` is part of the contract but not needed yet:
    loading already wrote implicit inputs into ``step.inputs``.
    """
    args: dict[str, Any] = {}
    for arg, ref in step.inputs.items():
        # A fallback the technician answered wins over the order's value, which it corrects.
        fallback = step.fallbacks.get(arg)
        value = values.get(fallback) if fallback is not None else None
        if value is None:
            value = _resolve(ref, values, order or {}, cuid)
        if value is not None:
            args[arg] = value
    return args


def order_value(order: Mapping[str, Any], field: str) -> Any:
    """An order's field, or the detail of that name; ``None`` when neither has a value."""
    value = order.get(field)
    if value is None or value == "":
        details = order.get("details")
        value = details.get(field) if isinstance(details, Mapping) else None
    return None if value == "" else value


def output_value(outputs: Mapping[str, Any], key: str | list[str]) -> Any:
    """A tool result's value for an output key, or the first of several that has one."""
    for name in [key] if isinstance(key, str) else key:
        value = outputs.get(name)
        if value is not None and value != "":
            return value
    return None


def _resolve(
    ref: str, values: Mapping[str, Any], order: Mapping[str, Any], cuid: str | None
) -> Any:
    if ref.startswith(ORDER_PREFIX):
        return order_value(order, ref[len(ORDER_PREFIX) :])
    if ref == CUID:
        return cuid or None
    return values.get(ref)


def done_message(plan: Plan, step: Step, values: Mapping[str, Any]) -> str | None:
    """``step.done`` filled in with ``values``, read as a technician reads them.

    Sensitive values are masked. A part of the message whose every value is
    unknown is left out; an unknown value in a part that has others reads
    "not recorded". Never "?", "None" or a raw dict.
    """
    if step.done is None:
        return None
    parts = [step.done] if isinstance(step.done, str) else step.done
    return "".join(_fill(part, values, plan.sensitive_names()) for part in parts).strip()


def _fill(template: str, values: Mapping[str, Any], sensitive: frozenset[str]) -> str:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return template
    fields = [field for _, field, _, _ in parsed if field is not None]
    if fields and all(readable(values.get(field)) == "" for field in fields):
        return ""
    out: list[str] = []
    for literal, field, spec, _conversion in parsed:
        out.append(literal)
        if field is None:
            continue
        value = values.get(field)
        if field in sensitive and value is not None:
            out.append(MASK)
            continue
        shown = readable(value)
        if shown == "":
            out.append(NOT_RECORDED)
            continue
        try:
            out.append(format(value, spec) if spec else shown)
        except (TypeError, ValueError):
            out.append(shown)
    return "".join(out)


def readable(value: Any) -> str:
    """A value as a technician reads it: yes/no, lists joined, "" for nothing at all."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "; ".join(
            f"{label(str(k))}: {readable(v)}" for k, v in value.items() if readable(v) != ""
        )
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(shown for shown in (readable(v) for v in value) if shown)
    return str(value).strip()


def label(name: str) -> str:
    """A value name as a heading: ``access_notes`` reads "Access notes"."""
    text = " ".join(name.replace("_", " ").replace("-", " ").split())
    return text[:1].upper() + text[1:] if text else name


# -- checking -----------------------------------------------------------------


def check_plan(plan: Plan, tools: ToolCatalog, source: str = "<plan>") -> Plan:
    """Check ``plan`` against ``tools``; return it with implicit inputs written out.

    Raises PlanError with every problem, each prefixed with ``source``. Use it
    for plans built in code; the loaders call it for files.
    """
    problems = _plan_problems(plan, tools)
    if problems:
        raise PlanError([f"{source}: {path}: {message}" for path, message in problems])
    return _with_implicit_inputs(plan, tools)


def _plan_problems(plan: Plan, tools: ToolCatalog) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for key, param in plan.parameters.items():
        where = "$.parameters" + _path_part(key)
        if not _NAME.fullmatch(key):
            problems.append(
                (
                    where,
                    "a parameter name is lower-case letters, digits and "
                    "underscores, starting with a letter",
                )
            )
        elif key == CUID:
            problems.append((where, "'cuid' is reserved for the technician's id"))
        if param.name != key:
            problems.append((f"{where}.name", f"name {param.name!r} differs from its key {key!r}"))
    for index, order_type in enumerate(plan.order_types):
        if not order_type.strip():
            problems.append((f"$.order_types[{index}]", "an order type cannot be blank"))

    available = {CUID}  # values provided before the current step
    step_of: dict[str, int] = {}
    stored_by: dict[str, str] = {}
    for index, step in enumerate(plan.steps):
        where = f"$.steps[{index}]"
        if step.id in step_of:
            problems.append(
                (f"{where}.id", f"duplicate step id {step.id!r} (also $.steps[{step_of[step.id]}])")
            )
        step_of.setdefault(step.id, index)
        if step.when is not None:
            for name, path in references(step.when, f"{where}.when"):
                if name not in available:
                    problems.append((path, f"no earlier step provides {name!r}"))
        for position, name in enumerate(step.parameters):
            if name not in plan.parameters:
                problems.append(
                    (
                        f"{where}.parameters[{position}]",
                        f"unknown parameter {name!r}: 'parameters' does not define it",
                    )
                )
        own = available | set(step.parameters)
        problems += _tool_problems(step, where, own, tools, plan.parameters)
        for name in step.outputs:
            at = f"{where}.outputs{_path_part(name)}"
            if not _NAME.fullmatch(name):
                problems.append(
                    (
                        at,
                        "a value name is lower-case letters, digits and "
                        "underscores, starting with a letter",
                    )
                )
            elif name == CUID or name in plan.parameters:
                problems.append((at, f"{name!r} would overwrite the parameter of that name"))
            elif name in stored_by:
                problems.append((at, f"{name!r} is already stored by step {stored_by[name]!r}"))
            stored_by.setdefault(name, step.id)
            if not isinstance(step.outputs[name], str) and not step.outputs[name]:
                problems.append((at, "a list of result keys needs at least one key"))
        available = own | set(step.outputs)
        if step.done is not None:
            parts = [step.done] if isinstance(step.done, str) else step.done
            for position, part in enumerate(parts):
                at = f"{where}.done" if isinstance(step.done, str) else f"{where}.done[{position}]"
                problems += _template_problems(part, at, available | ORDER_FIELDS)
    return problems


def plan_warnings(plan: Plan) -> list[tuple[str, str]]:
    """What is legal but will cost a technician: a tool input read from an order field
    that orders may lack, with no fallback parameter to ask for it."""
    found: list[tuple[str, str]] = []
    for index, step in enumerate(plan.steps):
        for arg, ref in step.inputs.items():
            if not ref.startswith(ORDER_PREFIX) or arg in step.fallbacks:
                continue
            field = ref[len(ORDER_PREFIX) :]
            if field not in REQUIRED_ORDER_FIELDS:
                found.append(
                    (
                        f"$.steps[{index}].inputs{_path_part(arg)}",
                        f"{ref!r} is optional in an order and has no fallback: an order "
                        f"without it stops this step; name a parameter in 'fallbacks'",
                    )
                )
    return found


def _tool_problems(
    step: Step, where: str, own: set[str], tools: ToolCatalog, parameters: Mapping[str, Parameter]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if step.tool is None:
        if step.fallbacks:
            problems.append((f"{where}.fallbacks", "fallbacks need a 'tool'"))
        if step.inputs:
            problems.append((f"{where}.inputs", "inputs need a 'tool'"))
        if step.outputs:
            problems.append((f"{where}.outputs", "outputs need a 'tool'"))
        return problems
    spec = tools.get(step.tool)
    if spec is None:
        problems.append((f"{where}.tool", f"unknown tool {step.tool!r}"))
    for arg, ref in step.inputs.items():
        at = f"{where}.inputs{_path_part(arg)}"
        if spec is not None and arg not in spec.accepted:
            problems.append((at, f"tool {step.tool!r} has no argument {arg!r}"))
        if ref.startswith(ORDER_PREFIX):
            if not ref[len(ORDER_PREFIX) :]:
                problems.append((at, "'order.' needs a field name"))
        elif ref not in own:
            problems.append(
                (at, f"no earlier step (and no parameter of this step) provides {ref!r}")
            )
    for arg, name in step.fallbacks.items():
        at = f"{where}.fallbacks{_path_part(arg)}"
        if arg not in step.inputs:
            problems.append((at, f"{arg!r} is not one of this step's inputs"))
        if name not in parameters:
            problems.append((at, f"unknown parameter {name!r}: 'parameters' does not define it"))
        elif name in step.parameters:
            problems.append((at, f"{name!r} is already asked for by this step"))
    if spec is not None:
        mapped = set(step.inputs) | (set(step.parameters) & spec.accepted)
        for arg in sorted(spec.required - mapped):
            problems.append(
                (
                    f"{where}.inputs",
                    f"tool {step.tool!r} needs {arg!r}: map it in "
                    f"'inputs' or ask for a parameter named {arg!r}",
                )
            )
    return problems


def _template_problems(
    template: str, where: str, names: set[str] | frozenset[str]
) -> list[tuple[str, str]]:
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template)]
    except ValueError as exc:
        return [(where, f"bad template: {exc}")]
    problems: list[tuple[str, str]] = []
    for field in fields:
        if field is None:
            continue
        if not _NAME.fullmatch(field):
            problems.append((where, f"{{{field}}}: a template names one value, like {{fsan}}"))
        elif field not in names:
            problems.append((where, f"{{{field}}}: no value {field!r} is known after this step"))
    return problems


def _with_implicit_inputs(plan: Plan, tools: ToolCatalog) -> Plan:
    steps: list[Step] = []
    for step in plan.steps:
        spec = tools.get(step.tool) if step.tool is not None else None
        if spec is None:
            steps.append(step)
            continue
        implicit = {
            name: name
            for name in step.parameters
            if name in spec.accepted and name not in step.inputs
        }
        steps.append(step.model_copy(update={"inputs": {**step.inputs, **implicit}}))
    # "$schema" is dropped too: snapshots exclude it, and a reloaded snapshot
    # should equal the plan it came from.
    return plan.model_copy(update={"steps": steps, "schema_ref": None})


# -- loading ------------------------------------------------------------------


def load_plan(path: Path, tools: ToolCatalog) -> Plan:
    """Load and check one plan file; PlanError lists every problem found."""
    plan, problems = _load(path, tools, stacklevel=3)
    if problems or plan is None:
        raise PlanError(problems or [f"{_shown_path(path)}: $: could not be loaded"])
    return plan


def load_plans(directory: Path, tools: ToolCatalog) -> PlanLibrary:
    """Load every ``*.json`` plan in ``directory`` (not ``*.schema.json``) into a library."""
    paths = _plan_files(directory)
    if not paths:
        raise PlanError([f"{_shown_path(directory)}: no plan files (*.json) found"])
    plans, problems, _ = _load_all(paths, tools)
    if problems:
        raise PlanError(problems)
    return PlanLibrary(tuple(plans))


def validate_files(paths: Sequence[Path], tools: ToolCatalog) -> list[str]:
    """Every problem in the given plan files, including order types claimed twice."""
    return _load_all(paths, tools)[1]


def check_files(paths: Sequence[Path], tools: ToolCatalog) -> tuple[list[str], list[str]]:
    """The problems of the given plan files, and the warnings of those that load."""
    plans, problems, found = _load_all(paths, tools)
    return problems, found


def _plan_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("*.json") if not p.name.endswith(".schema.json"))


def _load_all(paths: Iterable[Path], tools: ToolCatalog) -> tuple[list[Plan], list[str], list[str]]:
    plans: list[Plan] = []
    problems: list[str] = []
    found_warnings: list[str] = []
    claimed: dict[str, str] = {}
    ids: dict[str, str] = {}
    for path in paths:
        plan, found = _load(path, tools, stacklevel=4)
        problems += found
        if plan is None:
            continue
        shown = _shown_path(path)
        found_warnings += [f"{shown}: {at}: {message}" for at, message in plan_warnings(plan)]
        if plan.id in ids:
            problems.append(f"{shown}: $.id: plan id {plan.id!r} is already used by {ids[plan.id]}")
        ids.setdefault(plan.id, shown)
        for index, order_type in enumerate(plan.order_types):
            key = _order_type_key(order_type)
            if key in claimed:
                problems.append(
                    f"{shown}: $.order_types[{index}]: order type {order_type!r} "
                    f"is already claimed by {claimed[key]}"
                )
            claimed.setdefault(key, shown)
        plans.append(plan)
    return plans, problems, found_warnings


def _load(path: Path, tools: ToolCatalog, stacklevel: int) -> tuple[Plan | None, list[str]]:
    """Read, parse and check one file; ``stacklevel`` points a warning at the public caller."""
    shown = _shown_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{shown}: $: cannot read the file: {exc}"]
    duplicates: list[str] = []
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _object(pairs, duplicates))
    except json.JSONDecodeError as exc:
        return None, [
            f"{shown}: $: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ]
    except RecursionError:
        return None, [f"{shown}: $: invalid JSON: nested too deeply"]
    problems = [f"{shown}: $: duplicate key {key!r}" for key in duplicates]
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A JSON escape such as "\ud800" decodes to text nothing can store or send.
        return None, [f"{shown}: $: text that is not valid Unicode (a lone surrogate escape)"]
    if isinstance(data, list):
        warnings.warn(
            f"{shown} is a legacy plan (a list of tasks); rewrite it as a plan object "
            "like plans/installation.json",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        plan, found = _legacy_plan(path, data, tools)
        # A legacy file has its steps at the top level.
        found = [(re.sub(r"^\$\.steps\[", "$[", at), message) for at, message in found]
    else:
        plan, found = _parse_plan(data)
    problems += [f"{shown}: {at}: {message}" for at, message in found]
    if plan is None:
        return None, problems
    semantic = _plan_problems(plan, tools)
    if isinstance(data, list):
        semantic = [(re.sub(r"^\$\.steps\[", "$[", at), message) for at, message in semantic]
    problems += [f"{shown}: {at}: {message}" for at, message in semantic]
    if problems:
        return None, problems
    return _with_implicit_inputs(plan, tools), []


def _object(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            duplicates.append(key)
        result[key] = value
    return result


def _parse_plan(data: Any) -> tuple[Plan | None, list[tuple[str, str]]]:
    if not isinstance(data, dict):
        return None, [("$", "a plan is a JSON object (or, in the legacy format, a list of tasks)")]
    try:
        return Plan.model_validate(data), []
    except ValidationError as exc:
        return None, pydantic_problems(exc)


def pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Each error of a model validation as (JSON path, plain message); tools files use it too."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
        problems.append((json_path(error["loc"]), message))
    return problems


def json_path(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a JSON path, like ``$.steps[2].inputs.fsan``."""
    return "$" + "".join(_path_part(part) for part in loc if not is_union_tag(part))


def _path_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if _PATH_KEY.fullmatch(part) else f"[{json.dumps(part)}]"


def _shown_path(path: Path) -> str:
    """The path as a technician or CI log should see it: relative to here when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return str(path)


def _order_type_key(order_type: str) -> str:
    return order_type.strip().casefold()


# -- legacy plans ---------------------------------------------------------------

#: Tools that legacy plans name by task text (case, spacing and a final period ignored).
LEGACY_TASK_TOOLS: Mapping[str, str] = MappingProxyType(
    {
        "Find technician": "find_technician",
        "Find technician by account": "find_technician_by_account",
        "Get orders": "get_orders",
        "Get order details": "get_order_details",
        "Start order": "start_order",
        "Release order": "release_order",
        "Activate ONT": "activate_ont",
        "Check light levels": "check_light_levels",
        "Configure WiFi": "configure_wifi",
        "Configure Wi-Fi": "configure_wifi",
        "Run speed test": "run_speed_test",
        "Confirm customer online": "confirm_customer_online",
        "Run line test": "run_line_test",
        "Replace equipment": "replace_equipment",
        "Close order": "close_order",
        "Escalate": "escalate",
    }
)


def _task_key(task: str) -> str:
    return " ".join(task.replace("_", " ").split()).rstrip(".").casefold()


_LEGACY_BY_KEY = {_task_key(task): tool for task, tool in LEGACY_TASK_TOOLS.items()}


def legacy_tool_for_task(task: str) -> str | None:
    """The tool a legacy plan's task text means, ignoring case, spacing and a final period."""
    return _LEGACY_BY_KEY.get(_task_key(task))


LEGACY_PARAMETERS: dict[str, Parameter] = {
    "fsan": Parameter(
        name="fsan",
        prompt="What is the ONT serial number (FSAN)? It is on the label on the ONT, "
        "for example ALCL1A2B3C4D.",
        label="the ONT's serial number",
        pattern="^[A-Z]{4}[0-9A-F]{8}$",
        normalize="upper",
        example="ALCL1A2B3C4D",
    ),
    "model": Parameter(
        name="model",
        prompt="Which ONT model are you installing? It is printed on the same label as the "
        "serial number.",
        label="the ONT model",
        type=ParamType.CHOICE,
        choices=["G-010G-P", "G-240W-F", "716GE", "XS-010X-Q"],
        example="G-240W-F",
    ),
    "ethernet_port": Parameter(
        name="ethernet_port",
        prompt="Which Ethernet port on the ONT is the customer's router plugged into (1 to 4)?",
        label="the Ethernet port",
        type=ParamType.INTEGER,
        min=1,
        max=4,
        example="1",
    ),
    # Not only for comfort: without this entry a legacy Wi-Fi password would
    # be a plain string, shown unmasked.
    "wifi_password": Parameter(
        name="wifi_password",
        prompt="What Wi-Fi password does the customer want? 8 to 63 characters; "
        "I'll keep it masked from here on.",
        label="the Wi-Fi password",
        min=8,
        max=63,
        sensitive=True,
        example="blue-kettle-on-tuesday",
    ),
    # Asked when an order has no service tier (or one the speed test does not know).
    "service_tier": Parameter(
        name="service_tier",
        prompt="Which service tier did the customer buy?",
        label="the service tier",
        type=ParamType.CHOICE,
        choices=["300M", "500M", "1G"],
        example="1G",
    ),
}
"""Definitions for parameters that legacy plans name; the same as in plans/installation.json."""


class _LegacyTask(BaseModel):
    # Legacy files may carry notes next to a task; nothing else in them had meaning.
    model_config = ConfigDict(extra="ignore", frozen=True)

    task: str = Field(min_length=1)
    parameters: list[str] = Field(default_factory=list)
    tool: str | None = None


def _legacy_plan(
    path: Path, data: list[Any], tools: ToolCatalog
) -> tuple[Plan | None, list[tuple[str, str]]]:
    """Convert a legacy list of tasks into a Plan; the order type comes from the file name."""
    try:
        tasks = TypeAdapter(list[_LegacyTask]).validate_python(data)
    except ValidationError as exc:
        return None, pydantic_problems(exc)
    if not tasks:
        return None, [("$", "a legacy plan needs at least one task")]
    order_type = path.stem.removesuffix("_plan")
    parameters: dict[str, Parameter] = {}
    steps: list[Step] = []
    problems: list[tuple[str, str]] = []
    for index, task in enumerate(tasks):
        names = [normalize_key(name) for name in task.parameters]
        earlier = set(parameters)
        for name in names:
            parameters.setdefault(
                name,
                LEGACY_PARAMETERS.get(name)
                or Parameter(name=name, prompt=f"Please provide {name}"),
            )
        tool = task.tool or legacy_tool_for_task(task.task)
        if tool is None:
            problems.append(
                (
                    f"$[{index}].task",
                    f"no tool is known for task {task.task!r}; name one with a 'tool' key",
                )
            )
        spec = tools.get(tool) if tool is not None else None
        inputs = _legacy_inputs(spec, names, earlier) if spec is not None else {}
        # An order field with a known question is asked for when the order lacks it.
        fallbacks = {
            arg: arg
            for arg, ref in inputs.items()
            if ref == ORDER_PREFIX + arg and arg in LEGACY_PARAMETERS and arg not in names
        }
        for name in fallbacks.values():
            parameters.setdefault(name, LEGACY_PARAMETERS[name])
        steps.append(
            Step(
                id=f"step{index + 1}",
                task=task.task,
                parameters=names,
                tool=tool,
                inputs=inputs,
                fallbacks=fallbacks,
            )
        )
    if problems:
        return None, problems
    try:
        plan = Plan(
            id=f"legacy_{order_type}",
            title=f"{order_type.replace('_', ' ').capitalize()} (legacy plan)",
            order_types=[order_type],
            parameters=parameters,
            steps=steps,
        )
    except ValidationError as exc:
        return None, pydantic_problems(exc)
    return plan, []


def _legacy_inputs(spec: ToolSignature, names: list[str], earlier: set[str]) -> dict[str, str]:
    # The seed kept every value of the conversation in one dict and passed the
    # tool whatever matched; this reproduces that, explicitly.
    inputs: dict[str, str] = {}
    for arg in sorted(spec.accepted):
        if arg in names:
            continue  # implicit: the step's own parameter
        if arg in earlier:
            inputs[arg] = arg
        elif arg == CUID:
            inputs[arg] = CUID
        elif arg in ORDER_FIELDS:
            inputs[arg] = ORDER_PREFIX + arg
    return inputs


# -- JSON schema ----------------------------------------------------------------


def plan_json_schema() -> dict[str, Any]:
    """The JSON schema of a plan file, derived from the models."""
    schema = Plan.model_json_schema(by_alias=True)
    parameter = schema["$defs"]["Parameter"]
    # A plan fills a parameter's name from its key, so files may leave it out.
    parameter["required"] = [key for key in parameter.get("required", []) if key != "name"]
    return {"$schema": SCHEMA_DIALECT, **schema}


def write_schema(path: Path) -> None:
    """Write ``plan_json_schema()`` to ``path`` (plans/plan.schema.json in the repository)."""
    path.write_text(
        json.dumps(plan_json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
