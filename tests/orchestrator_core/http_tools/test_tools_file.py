"""The tools file: what it declares, how a typo is refused, and secrets from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator_core.errors import ToolsFileError
from orchestrator_core.http_tools import HttpToolRuntime, declared_registry, load_tools_file
from orchestrator_core.http_tools.spec import tools_json_schema
from orchestrator_core.plans import check_files
from orchestrator_core.tools import default_registry
from plans import PLANS_DIR

BASE = "https://provisioning.example"


def tool(**fields: object) -> dict[str, object]:
    declared: dict[str, object] = {
        "description": "Activate the ONT.",
        "method": "POST",
        "url": f"{BASE}/onts/{{fsan}}/activate",
        "inputs": {"fsan": {"type": "string"}},
        "headers": {"Authorization": "Bearer ${PROVISIONING_TOKEN}"},
    }
    declared.update(fields)
    return declared


def problems(tmp_path: Path, content: object, name: str = "tools.json") -> list[str]:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ToolsFileError) as caught:
        load_tools_file(path)
    return [p.split(": ", 1)[1] for p in caught.value.problems]


def test_a_valid_file_loads_in_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "tools.json").write_text(json.dumps({"tools": {"activate": tool()}}))
    (tmp_path / "tools.yaml").write_text(
        "tools:\n  activate:\n"
        "    description: Activate the ONT.\n"
        "    method: POST\n"
        f"    url: {BASE}/onts/{{fsan}}/activate\n"
        "    inputs: {fsan: {type: string}}\n"
        "    headers: {Authorization: 'Bearer ${PROVISIONING_TOKEN}'}\n"
    )
    assert load_tools_file(tmp_path / "tools.json") == load_tools_file(tmp_path / "tools.yaml")


def test_an_unknown_input_type_is_refused_with_its_json_path(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tools": {"activate": tool(inputs={"fsan": {"type": "strnig"}})}})
    assert len(found) == 1
    assert found[0].startswith("$.tools.activate.inputs.fsan.type: Input should be 'string'")


def test_a_url_naming_an_unknown_input_is_refused_with_its_json_path(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tools": {"activate": tool(url=f"{BASE}/onts/{{fsn}}/go")}})
    assert found == ["$.tools.activate.url: {fsn} is not a declared input (declared: fsan)"]


def test_a_url_naming_an_optional_input_is_refused(tmp_path: Path) -> None:
    inputs = {"fsan": {"type": "string", "required": False}}
    found = problems(tmp_path, {"tools": {"activate": tool(inputs=inputs)}})
    assert found == ["$.tools.activate.url: {fsan} is optional, and a URL path needs a value"]


def test_a_body_naming_an_unknown_input_is_refused_with_its_json_path(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tools": {"activate": tool(body={"ont": {"serial": "{serial}"}})}})
    assert found == [
        "$.tools.activate.body.ont.serial: {serial} is not a declared input (declared: fsan)"
    ]


def test_an_unknown_field_is_refused_with_its_json_path(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tools": {"activate": tool(idempotant=True)}})
    assert found == ["$.tools.activate.idempotant: unknown key"]


def test_a_secret_header_written_in_the_file_is_refused(tmp_path: Path) -> None:
    headers = {"Authorization": "Bearer abc123", "X-Api-Key": "k", "Accept": "application/json"}
    found = problems(tmp_path, {"tools": {"activate": tool(headers=headers)}})
    assert [p.split(":")[0] for p in found] == [
        "$.tools.activate.headers.Authorization",
        '$.tools.activate.headers["X-Api-Key"]',
    ]
    assert "must come from the environment" in found[0]
    assert not any("abc123" in p for p in found)


def test_a_header_marked_secret_must_come_from_the_environment(tmp_path: Path) -> None:
    headers = {"X-Tenant": {"value": "acme", "secret": True}}
    found = problems(tmp_path, {"tools": {"activate": tool(headers=headers)}})
    assert found[0].startswith('$.tools.activate.headers["X-Tenant"]: X-Tenant is a secret header')


def test_retries_are_refused_for_a_tool_that_is_not_idempotent(tmp_path: Path) -> None:
    found = problems(tmp_path, {"tools": {"activate": tool(retry={"retries": 2})}})
    assert found[0].startswith("$.tools.activate.retry: only an idempotent tool is retried")


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "tools:\n  a: [1, 2\n", name="tools.yaml")
    assert found[0].startswith("$: invalid YAML at line ")


def test_a_missing_environment_variable_fails_at_start_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": {"activate": tool()}}))
    with pytest.raises(ToolsFileError) as caught:
        HttpToolRuntime(load_tools_file(path), {"OTHER": "x"}, source=str(path))
    assert caught.value.problems == [
        f"{path}: $.tools.activate.headers.Authorization: the environment variable "
        "PROVISIONING_TOKEN is not set; set it to the header's value before starting"
    ]


def test_declared_tools_join_the_built_in_ones_under_their_names(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": {"provision_ont": tool()}}))
    registry = declared_registry(default_registry(), load_tools_file(path))
    spec = registry.get("provision_ont")
    assert spec is not None and spec.required == {"fsan"} and "get_orders" in registry


def test_a_declared_tool_named_like_a_built_in_one_takes_its_place(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": {"activate_ont": tool()}}))
    registry = declared_registry(default_registry(), load_tools_file(path))
    spec = registry.get("activate_ont")
    assert spec is not None and spec.accepted == {"fsan"} and spec.keyed is False
    assert default_registry().get("activate_ont") != spec  # the built-ins are untouched


def test_the_committed_tools_schema_is_up_to_date() -> None:
    """plans/tools.schema.json is what tools_json_schema() generates.

    Regenerate it with: .venv/bin/python -c "from plans import PLANS_DIR;
    from orchestrator_core.http_tools.spec import write_tools_schema as w;
    w(PLANS_DIR / 'tools.schema.json')"
    """
    committed = json.loads((PLANS_DIR / "tools.schema.json").read_text(encoding="utf-8"))
    assert committed == tools_json_schema()


def test_the_bundled_plans_validate_against_the_demo_tools_file() -> None:
    """plans/demo-http-tools.yaml replaces the network tools; the plans still fit them."""
    demo = load_tools_file(PLANS_DIR / "demo-http-tools.yaml")
    registry = declared_registry(default_registry(), demo)
    files = [PLANS_DIR / "installation.json", PLANS_DIR / "repair.json"]
    problems, _ = check_files(files, registry)
    assert problems == []
    wifi = registry.get("configure_wifi")
    assert wifi is not None and wifi.sensitive == {"wifi_password"}
