"""Plan models, loading, checking, legacy plans, tool inputs and the JSON schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core.errors import PlanError
from orchestrator_core.params import MASK
from orchestrator_core.plans import (
    LEGACY_PARAMETERS,
    ParamType,
    Plan,
    PlanLibrary,
    check_plan,
    done_message,
    load_plan,
    load_plans,
    output_value,
    plan_json_schema,
    plan_warnings,
    step_inputs,
    validate_files,
)
from orchestrator_core.tools import ToolRegistry, default_registry
from plans import PLANS_DIR

FIXTURES = Path(__file__).parent / "plan_fixtures"


@pytest.fixture(scope="module")
def tools() -> ToolRegistry:
    return default_registry()


@pytest.fixture(scope="module")
def library(tools: ToolRegistry) -> PlanLibrary:
    return load_plans(PLANS_DIR, tools)


def problems_of(path: Path, tools: ToolRegistry) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(path, tools)
    return caught.value.problems


def assert_problem(problems: list[str], expected: str) -> None:
    """``expected`` is "<file name>: <JSON path>: <message>"; the file's directory may vary."""
    assert any(p.endswith(expected) and f"/{expected}" in "/" + p for p in problems), (
        f"{expected!r} not among:\n" + "\n".join(problems)
    )


# -- the bundled plans --------------------------------------------------------------


def test_the_bundled_plans_load_against_the_real_registry(library: PlanLibrary) -> None:
    """installation.json and repair.json are valid and claim their order types."""
    installation = library.for_order_type("installation")
    repair = library.for_order_type("repair")
    assert installation is not None and repair is not None
    assert [s.id for s in installation.steps][:7] == [
        "verify_order",
        "activate_ont",
        "light_levels",
        "wifi",
        "speed_test",
        "customer_online",
        "close",
    ]
    assert [s.id for s in repair.steps] == [
        "trouble_details",
        "line_test",
        "diagnosis",
        "replace_ont",
        "retest",
        "close",
    ]
    assert {p.id for p in library.plans} == {"installation", "repair"}


def test_every_tool_step_of_the_bundled_plans_says_when_it_is_done(library: PlanLibrary) -> None:
    """A technician always hears what a tool did."""
    for plan in library.plans:
        for step in plan.steps:
            assert step.tool is None or step.done, f"{plan.id}.{step.id} has no done message"


def test_order_types_match_case_insensitively(library: PlanLibrary) -> None:
    """Order types from the database may differ in case and spacing."""
    assert library.for_order_type(" Installation ") is library.for_order_type("installation")
    assert library.for_order_type("survey") is None


def test_the_installation_plan_asks_for_the_wifi_password_as_a_secret(library: PlanLibrary) -> None:
    """The Wi-Fi password is the installation plan's one sensitive value."""
    plan = library.for_order_type("installation")
    assert plan is not None
    assert plan.sensitive_names() == frozenset({"wifi_password"})
    assert plan.parameter("fsan").name == "fsan"  # filled in from the key
    with pytest.raises(KeyError, match="no parameter 'colour'"):
        plan.parameter("colour")


def test_implicit_inputs_are_written_out_when_loading(library: PlanLibrary) -> None:
    """A tool argument named like one of the step's parameters is mapped to it."""
    plan = library.for_order_type("installation")
    assert plan is not None
    steps = {s.id: s for s in plan.steps}
    assert steps["activate_ont"].inputs == {
        "order_id": "order.order_id",
        "fsan": "fsan",
        "model": "model",
        "ethernet_port": "ethernet_port",
    }
    assert steps["customer_online"].inputs == {"customer_online": "customer_online"}


def test_a_loaded_plan_survives_a_session_snapshot(library: PlanLibrary) -> None:
    """Sessions store plan.model_dump(mode='json'); validating it gives the same plan."""
    for plan in library.plans:
        snapshot = json.loads(json.dumps(plan.model_dump(mode="json")))
        assert "$schema" not in snapshot
        assert Plan.model_validate(snapshot) == plan


def test_the_legacy_parameter_table_matches_installation_json(library: PlanLibrary) -> None:
    """Legacy plans ask for fsan, model, ... exactly as the installation plan does."""
    plan = library.for_order_type("installation")
    assert plan is not None
    for name, param in LEGACY_PARAMETERS.items():
        assert plan.parameter(name) == param


# -- rejections ---------------------------------------------------------------------


def test_every_cross_reference_problem_is_listed_with_its_path(tools: ToolRegistry) -> None:
    """One load reports all the semantic problems of a file, each with file and JSON path."""
    problems = problems_of(FIXTURES / "bad_semantics.json", tools)
    name = "bad_semantics.json"
    for expected in [
        "$.steps[1].id: duplicate step id 'verify' (also $.steps[0])",
        "$.steps[1].inputs.fsan: no earlier step (and no parameter of this step) provides "
        "'ont_serial'",
        "$.steps[2].parameters[1]: unknown parameter 'model': 'parameters' does not define it",
        "$.steps[2].tool: unknown tool 'activate_ontt'",
        "$.steps[3].when.all[0].value: no earlier step provides 'light_ok'",
        "$.steps[3].inputs: tool 'run_speed_test' needs 'fsan': map it in 'inputs' or ask for "
        "a parameter named 'fsan'",
        "$.steps[4].inputs.reason: tool 'close_order' has no argument 'reason'",
        "$.steps[4].done: {nothing}: no value 'nothing' is known after this step",
    ]:
        assert_problem(problems, f"{name}: {expected}")
    assert len(problems) == 9


def test_every_shape_problem_is_listed_with_its_path(tools: ToolRegistry) -> None:
    """Pydantic errors become JSON paths; a bad regex and a choice without choices are caught."""
    problems = problems_of(FIXTURES / "bad_schema.json", tools)
    name = "bad_schema.json"
    for expected in [
        "$.colour: unknown key",
        "$.parameters.model: a 'choice' parameter needs a non-empty 'choices' list",
        "$.parameters.ethernet_port.type: Input should be 'string', 'integer', 'number', "
        "'boolean' or 'choice'",
        "$.steps[0].task: required key is missing",
    ]:
        assert_problem(problems, f"{name}: {expected}")
    assert any(
        f"{name}: $.parameters.fsan.pattern: invalid regular expression" in p for p in problems
    )
    assert any(f"{name}: $.steps[1].when.op: Input should be 'eq'" in p for p in problems)
    assert len(problems) == 6


def test_invalid_json_names_the_line_and_column(tools: ToolRegistry) -> None:
    """A syntax error points at where it is."""
    problems = problems_of(FIXTURES / "bad_json.json", tools)
    assert_problem(problems, "bad_json.json: $: invalid JSON at line 4, column 1: Expecting value")


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _minimal(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "id": "mini",
        "title": "Mini",
        "order_types": ["survey"],
        "parameters": {},
        "steps": [
            {
                "id": "close",
                "task": "Close",
                "tool": "close_order",
                "inputs": {"order_id": "order.order_id"},
            }
        ],
    }
    plan.update(changes)
    return plan


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"steps": [{"id": "s", "task": "T", "when": {"value": "ont_id", "op": "exists"}}]},
            "$.steps[0].when.value: no earlier step provides 'ont_id'",
        ),
        (
            {"steps": [{"id": "s", "task": "T", "tool": "close_order"}]},
            "$.steps[0].inputs: tool 'close_order' needs 'order_id': map it in 'inputs' or ask "
            "for a parameter named 'order_id'",
        ),
        (
            {"parameters": {"p": {"prompt": "?", "type": "choice", "choices": []}}},
            "$.parameters.p: a 'choice' parameter needs a non-empty 'choices' list",
        ),
        (
            {"parameters": {"Serial Number": {"prompt": "?"}}},
            '$.parameters["Serial Number"]: a parameter name is lower-case letters, digits and '
            "underscores, starting with a letter",
        ),
        (
            {"parameters": {"fsan": {"name": "serial", "prompt": "?"}}},
            "$.parameters.fsan.name: name 'serial' differs from its key 'fsan'",
        ),
        (
            {
                "steps": [
                    {
                        "id": "s",
                        "task": "T",
                        "tool": "run_line_test",
                        "inputs": {"order_id": "order.order_id"},
                        "outputs": {"cuid": "line_status"},
                    }
                ]
            },
            "$.steps[0].outputs.cuid: 'cuid' would overwrite the parameter of that name",
        ),
        (
            {"steps": [{"id": "s", "task": "T", "outputs": {"x": "y"}}]},
            "$.steps[0].outputs: outputs need a 'tool'",
        ),
        (
            {"steps": [{"id": "s", "task": "T", "done": "Done {}"}]},
            "$.steps[0].done: {}: a template names one value, like {fsan}",
        ),
        (
            {"steps": [{"id": "s", "task": "T", "when": "light_ok == True"}]},
            "$.steps[0].when: a condition is an object with 'value' and 'op', or with 'all', "
            "'any' or 'not'",
        ),
        ({"steps": []}, "$.steps: List should have at least 1 item after validation, not 0"),
    ],
)
def test_single_rejections(
    tmp_path: Path, tools: ToolRegistry, changes: dict[str, Any], expected: str
) -> None:
    """Each kind of mistake is reported with the file and a JSON path."""
    problems = problems_of(_write(tmp_path, "plan.json", _minimal(**changes)), tools)
    assert_problem(problems, f"plan.json: {expected}")


def test_a_value_from_a_later_step_is_not_available_yet(
    tmp_path: Path, tools: ToolRegistry
) -> None:
    """Inputs may only use values that exist when the step runs."""
    data = _minimal(
        steps=[
            {
                "id": "light",
                "task": "Light",
                "tool": "check_light_levels",
                "inputs": {"fsan": "fsan"},
            },
            {"id": "ask", "task": "Ask", "parameters": ["fsan"]},
        ],
        parameters={"fsan": {"prompt": "?"}},
    )
    problems = problems_of(_write(tmp_path, "plan.json", data), tools)
    assert_problem(
        problems,
        "plan.json: $.steps[0].inputs.fsan: no earlier step (and no "
        "parameter of this step) provides 'fsan'",
    )


def test_a_top_level_that_is_not_a_plan_is_rejected(tmp_path: Path, tools: ToolRegistry) -> None:
    """A JSON string or number is neither a plan nor a legacy list."""
    problems = problems_of(_write(tmp_path, "plan.json", "hello"), tools)
    assert_problem(
        problems,
        "plan.json: $: a plan is a JSON object (or, in the legacy format, a list of tasks)",
    )


def test_a_duplicate_json_key_is_reported(tmp_path: Path, tools: ToolRegistry) -> None:
    """JSON parsers keep the last of two equal keys; a plan author meant something else."""
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_minimal())[:-1] + ', "id": "again"}', encoding="utf-8")
    assert_problem(problems_of(path, tools), "plan.json: $: duplicate key 'id'")


def test_a_missing_file_is_a_problem_not_a_crash(tmp_path: Path, tools: ToolRegistry) -> None:
    """validate_files reports an unreadable file like any other problem."""
    problems = validate_files([tmp_path / "nope.json"], tools)
    assert len(problems) == 1 and "nope.json: $: cannot read the file" in problems[0]


def test_two_plans_claiming_one_order_type_are_rejected(
    tmp_path: Path, tools: ToolRegistry
) -> None:
    """An order type maps to exactly one plan."""
    shutil.copy(PLANS_DIR / "repair.json", tmp_path / "a_repair.json")
    data = json.loads((PLANS_DIR / "repair.json").read_text(encoding="utf-8"))
    data.update(id="repair_two", order_types=["Repair"])
    _write(tmp_path, "b_repair.json", data)
    with pytest.raises(PlanError) as caught:
        load_plans(tmp_path, tools)
    assert_problem(
        caught.value.problems,
        "b_repair.json: $.order_types[0]: order type 'Repair' is already claimed by "
        f"{_shown(tmp_path / 'a_repair.json')}",
    )


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def test_validate_files_collects_problems_across_files(tools: ToolRegistry) -> None:
    """The CLI gets every problem of every file in one list."""
    problems = validate_files(
        [FIXTURES / "bad_json.json", FIXTURES / "bad_semantics.json", PLANS_DIR / "repair.json"],
        tools,
    )
    assert len(problems) == 10
    assert validate_files([PLANS_DIR / "installation.json", PLANS_DIR / "repair.json"], tools) == []


def test_an_empty_directory_is_an_error(tmp_path: Path, tools: ToolRegistry) -> None:
    """A library without plans cannot serve any order."""
    with pytest.raises(PlanError, match="no plan files"):
        load_plans(tmp_path, tools)


def test_check_plan_accepts_a_plan_built_in_code(tools: ToolRegistry) -> None:
    """Plans built in tests get the same checks and implicit inputs as files."""
    plan = Plan.model_validate(
        _minimal(
            parameters={"fsan": {"prompt": "?"}},
            steps=[
                {
                    "id": "light",
                    "task": "Light",
                    "parameters": ["fsan"],
                    "tool": "check_light_levels",
                }
            ],
        )
    )
    checked = check_plan(plan, tools)
    assert checked.steps[0].inputs == {"fsan": "fsan"}
    with pytest.raises(PlanError, match=r"^mine: \$\.steps\[0\]\.tool: unknown tool 'nope'$"):
        check_plan(
            Plan.model_validate(_minimal(steps=[{"id": "s", "task": "T", "tool": "nope"}])),
            tools,
            source="mine",
        )


def test_an_optional_order_field_without_a_fallback_is_warned_about(tools: ToolRegistry) -> None:
    """Legal, but an order without a tier would stop the speed test; a fallback asks instead."""
    speed = {
        "id": "speed",
        "task": "Speed",
        "parameters": ["fsan"],
        "tool": "run_speed_test",
        "inputs": {"service_tier": "order.service_tier"},
    }
    bare = check_plan(
        Plan.model_validate(_minimal(parameters={"fsan": {"prompt": "FSAN?"}}, steps=[speed])),
        tools,
    )
    [(path, message)] = plan_warnings(bare)
    assert path == "$.steps[0].inputs.service_tier" and "no fallback" in message
    tier = {"prompt": "Tier?", "type": "choice", "choices": ["1G"]}
    with_fallback = {**speed, "fallbacks": {"service_tier": "service_tier"}}
    fine = Plan.model_validate(
        _minimal(
            parameters={"fsan": {"prompt": "FSAN?"}, "service_tier": tier}, steps=[with_fallback]
        )
    )
    assert plan_warnings(check_plan(fine, tools)) == []
    broken = {**speed, "fallbacks": {"service_tier": "tier", "speed": "fsan"}}
    with pytest.raises(PlanError) as caught:
        check_plan(
            Plan.model_validate(_minimal(parameters={"fsan": {"prompt": "FSAN?"}}, steps=[broken])),
            tools,
        )
    assert caught.value.problems == [
        "<plan>: $.steps[0].fallbacks.service_tier: unknown parameter 'tier': "
        "'parameters' does not define it",
        "<plan>: $.steps[0].fallbacks.speed: 'speed' is not one of this step's inputs",
        "<plan>: $.steps[0].fallbacks.speed: 'fsan' is already asked for by this step",
    ]


def test_the_bundled_plans_have_no_warnings(library: PlanLibrary) -> None:
    assert [plan_warnings(plan) for plan in library.plans] == [[], []]


def test_done_parts_whose_values_are_all_unknown_are_left_out(library: PlanLibrary) -> None:
    repair = library.for_order_type("repair")
    assert repair is not None
    step = repair.steps[0]
    known = {"address": "9 Elm St", "trouble_description": "No sync", "current_model": "716GE"}
    assert done_message(repair, step, known) == (
        "Reported trouble at 9 Elm St: No sync. Installed ONT: 716GE, serial not recorded."
    )
    assert done_message(repair, step, {"address": "9 Elm St", "current_serial": None}) == (
        "Reported trouble at 9 Elm St: not recorded."
    )
    shown = done_message(repair, step, {**known, "trouble_description": {"a": [1, True]}})
    assert shown is not None and "A: 1, yes" in shown


def test_an_output_takes_the_first_of_its_keys_that_has_a_value(library: PlanLibrary) -> None:
    repair = library.for_order_type("repair")
    assert repair is not None
    keys = repair.steps[0].outputs["trouble_description"]
    assert output_value({"trouble": "Dead ONT", "problem": "other"}, keys) == "Dead ONT"
    assert output_value({"trouble_description": "", "symptom": "Slow"}, keys) == "Slow"
    assert output_value({}, keys) is None


# -- legacy plans ---------------------------------------------------------------------


def test_a_legacy_list_plan_loads_with_a_deprecation_warning(tools: ToolRegistry) -> None:
    """The seed's list of tasks still works; the warning names the file."""
    with pytest.warns(DeprecationWarning, match=r"installation_plan\.json is a legacy plan"):
        plan = load_plan(FIXTURES / "installation_plan.json", tools)
    assert plan.order_types == ["installation"]
    assert [s.id for s in plan.steps] == [f"step{i}" for i in range(1, 7)]
    assert [s.tool for s in plan.steps] == [
        "activate_ont",
        "check_light_levels",
        "configure_wifi",
        "run_speed_test",
        "confirm_customer_online",
        "close_order",
    ]
    assert plan.parameter("fsan") == LEGACY_PARAMETERS["fsan"]
    assert plan.parameter("ethernet_port").type is ParamType.INTEGER
    assert plan.sensitive_names() == frozenset({"wifi_password"})
    ssid = plan.parameter("ssid")
    assert (ssid.type, ssid.prompt) == (ParamType.STRING, "Please provide ssid")
    # Arguments the seed took from the order or earlier answers are mapped explicitly.
    assert plan.steps[0].inputs["order_id"] == "order.order_id"
    assert plan.steps[3].inputs == {"fsan": "fsan", "service_tier": "order.service_tier"}
    assert plan.steps[2].inputs["fsan"] == "fsan"
    # An order without a tier gets the tier asked for, with the bundled plan's question.
    assert plan.steps[3].fallbacks == {"service_tier": "service_tier"}
    assert plan.parameter("service_tier").choices == ["300M", "500M", "1G"]


def test_a_legacy_task_without_a_tool_is_reported(tools: ToolRegistry) -> None:
    """A task text no tool is known for must name its tool."""
    with pytest.warns(DeprecationWarning, match="unknown_task_plan.json"):
        problems = problems_of(FIXTURES / "unknown_task_plan.json", tools)
    assert_problem(
        problems,
        "unknown_task_plan.json: $[1].task: no tool is known for task "
        "'Dance a jig'; name one with a 'tool' key",
    )


# -- step inputs and done messages -------------------------------------------------------------


def test_step_inputs_resolve_every_kind_of_reference(library: PlanLibrary) -> None:
    """Order fields and stored values resolve; missing ones are left out."""
    repair = library.for_order_type("repair")
    assert repair is not None
    step = next(s for s in repair.steps if s.id == "replace_ont")
    order = {"order_id": "ORD-1", "details": {"current_serial": "ALCL00000000"}}
    values = {"new_serial": "ALCL1234ABCD", "current_serial": "ALCLB0B0CAFE"}
    assert step_inputs(repair, step, values, order, "AB1234") == {
        "order_id": "ORD-1",
        "new_serial": "ALCL1234ABCD",
        "old_serial": "ALCLB0B0CAFE",
    }
    assert step_inputs(repair, step, {}, {}, None) == {}


def test_step_inputs_reads_order_details_and_cuid(tools: ToolRegistry) -> None:
    """An order field missing at the top is looked up in details; cuid is the technician."""
    plan = check_plan(
        Plan.model_validate(
            _minimal(
                steps=[
                    {
                        "id": "esc",
                        "task": "Escalate",
                        "tool": "escalate",
                        "inputs": {
                            "cuid": "cuid",
                            "reason": "order.trouble_description",
                            "order_id": "order.order_id",
                        },
                    },
                ]
            )
        ),
        tools,
    )
    order = {"order_id": "ORD-9", "details": {"trouble_description": "LOS light"}}
    assert step_inputs(plan, plan.steps[0], {}, order, "AB1234") == {
        "cuid": "AB1234",
        "reason": "LOS light",
        "order_id": "ORD-9",
    }


def test_done_messages_fill_values_and_mask_secrets(tools: ToolRegistry) -> None:
    """done_message masks sensitive values and says "not recorded" for missing ones."""
    plan = check_plan(
        Plan.model_validate(
            _minimal(
                parameters={
                    "ssid": {"prompt": "?"},
                    "wifi_password": {"prompt": "?", "sensitive": True},
                },
                steps=[
                    {
                        "id": "wifi",
                        "task": "Wi-Fi",
                        "parameters": ["ssid", "wifi_password"],
                        "tool": "configure_wifi",
                        "inputs": {"fsan": "order.fsan"},
                        "done": "{ssid} / {wifi_password} / {customer_name} / {ssid!r:>8}",
                    }
                ],
            )
        ),
        tools,
    )
    values = {"ssid": "Home", "wifi_password": "hunter22"}
    assert done_message(plan, plan.steps[0], values) == f"Home / {MASK} / not recorded /     Home"


# -- JSON schema --------------------------------------------------------------------------


def test_the_committed_schema_is_up_to_date() -> None:
    """plans/plan.schema.json is what plan_json_schema() generates.

    To update it: .venv/bin/python -c "from plans import PLANS_DIR;
    from orchestrator_core.plans import write_schema; write_schema(PLANS_DIR / 'plan.schema.json')"
    """
    committed = json.loads((PLANS_DIR / "plan.schema.json").read_text(encoding="utf-8"))
    assert committed == plan_json_schema()


def test_the_schema_lets_a_parameter_omit_its_name() -> None:
    """Files key parameters by name, so the schema must not require 'name'."""
    parameter = plan_json_schema()["$defs"]["Parameter"]
    assert "name" not in parameter["required"]
    assert "$schema" in plan_json_schema()["properties"]
