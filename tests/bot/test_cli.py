"""The techassist command line, run as a real process the way an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bot.live import Live, environment, techassist

FIXTURES = Path(__file__).parents[1] / "orchestrator_core" / "plan_fixtures"


def test_orders_list_shows_the_demo_orders_in_priority_order(tmp_path: Path) -> None:
    done = techassist(tmp_path, "orders", "list", "--cuid", "ab1234", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    open_rows = [r for r in rows if r["priority"] is not None]
    assert [r["priority"] for r in open_rows] == list(range(1, len(open_rows) + 1))
    assert open_rows[0]["order_id"] == "ORD-1003" and open_rows[0]["status"] == "in_progress"
    assert {r["status"] for r in rows if r["priority"] is None} == {"completed"}
    table = techassist(tmp_path, "orders", "list", "--cuid", "AB1234")
    assert table.stdout.splitlines()[1].split()[:2] == ["1", "ORD-1003"]


def test_orders_list_refuses_an_unknown_cuid(tmp_path: Path) -> None:
    done = techassist(tmp_path, "orders", "list", "--cuid", "ZZ0000")
    assert done.returncode == 1 and "No technician with CUID ZZ0000" in done.stderr


def gina_import(tmp_path: Path, **order: str) -> Path:
    """An import file with one new technician and one repair order (fields overridable)."""
    data = {
        "technicians": [{"cuid": "GH3456", "name": "Gina Hale"}],
        "orders": [
            {
                "order_id": "ORD-9001",
                "cuid": "GH3456",
                "order_type": "repair",
                "status": "assigned",
                "scheduled_start": "2026-12-01T08:00:00Z",
                "created_at": "2026-11-01T08:00:00Z",
                "customer_name": "Xavier",
                "address": "1 Road",
                **order,
            }
        ],
    }
    path = tmp_path / "import.json"
    path.write_text(json.dumps(data))
    return path


def test_an_import_with_a_bad_record_names_it_and_imports_nothing(tmp_path: Path) -> None:
    path = gina_import(tmp_path, scheduled_start="not a time")
    done = techassist(tmp_path, "orders", "import", str(path))
    assert done.returncode == 1
    assert "orders[0]" in done.stderr and "scheduled_start" in done.stderr
    listed = techassist(tmp_path, "orders", "list", "--cuid", "GH3456")
    assert listed.returncode == 1  # the technician was not half-imported either


def test_an_import_adds_orders_that_the_list_then_shows(tmp_path: Path) -> None:
    path = gina_import(tmp_path, gate_code="1234")
    done = techassist(tmp_path, "orders", "import", str(path))
    assert done.returncode == 0, done.stderr
    rows = json.loads(techassist(tmp_path, "orders", "list", "--cuid", "GH3456", "--json").stdout)
    assert rows[0]["order_id"] == "ORD-9001" and rows[0]["details"]["gate_code"] == "1234"


def test_an_import_says_what_technicians_will_be_asked_for(tmp_path: Path) -> None:
    base = json.loads(gina_import(tmp_path).read_text())["orders"][0]
    installation = dict(base, order_type="installation")
    data = {
        "technicians": [{"cuid": "GH3456", "name": "Gina Hale", "email": None}],
        "orders": [
            dict(installation, order_id="ORD-9001"),
            dict(installation, order_id="ORD-9002", service_tier=None, details=None),
            dict(installation, order_id="ORD-9003", service_tier="GIG1000"),
            dict(base, order_id="ORD-9004", order_type="relocation"),
        ],
        "inventory": [{"serial": "HWTC00000001", "model": "HG8245", "status": "available"}],
    }
    path = tmp_path / "operator.json"
    path.write_text(json.dumps(data))
    done = techassist(tmp_path, "orders", "import", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Imported 1 technicians, 4 orders, 1 inventory items (0 updated)."
    warnings = lines[1:]
    assert len(warnings) == 4 and all(w.startswith("warning: ") for w in warnings)
    assert "2 open installation orders have no service_tier" in warnings[0]
    assert "(ORD-9001, ORD-9002)" in warnings[0]
    assert "doesn't know (GIG1000; known: 300M, 500M, 1G)" in warnings[1]
    assert "no plan serves (relocation)" in warnings[2] and "ORD-9004" in warnings[2]
    assert "(HG8245; known:" in warnings[3] and "HWTC00000001" in warnings[3]
    rows = json.loads(techassist(tmp_path, "orders", "list", "--cuid", "GH3456", "--json").stdout)
    assert len(rows) == 4  # warned about, all imported


def test_an_import_checks_orders_against_the_configured_plans(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    plan = json.loads((Path(__file__).parents[2] / "plans" / "repair.json").read_text())
    plan["order_types"] = ["repair", "relocation"]
    (plans / "repair.json").write_text(json.dumps(plan))
    path = gina_import(tmp_path, order_type="relocation")
    done = techassist(tmp_path, "orders", "import", str(path), TECHASSIST_PLANS_DIR=str(plans))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stdout
    (plans / "repair.json").write_text("{}")
    broken = techassist(tmp_path, "orders", "import", str(path), TECHASSIST_PLANS_DIR=str(plans))
    assert broken.returncode == 0, broken.stderr
    assert "warning: the plans in" in broken.stdout and "not checked against them" in broken.stdout


def test_plans_validate_accepts_the_bundled_plans(tmp_path: Path) -> None:
    done = techassist(tmp_path, "plans", "validate")
    assert done.returncode == 0, done.stderr
    assert "2 plan file(s) valid" in done.stdout


def test_plans_validate_names_the_file_and_json_path_of_each_problem(tmp_path: Path) -> None:
    bad = FIXTURES / "bad_semantics.json"
    done = techassist(tmp_path, "plans", "validate", str(bad))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines and all("bad_semantics.json: $." in line for line in lines)
    assert any("unknown tool" in line for line in lines)


def test_plans_validate_warns_about_an_order_input_without_a_fallback(tmp_path: Path) -> None:
    plan = json.loads((Path(__file__).parents[2] / "plans" / "installation.json").read_text())
    for step in plan["steps"]:
        step.pop("fallbacks", None)
    path = tmp_path / "installation.json"
    path.write_text(json.dumps(plan))
    done = techassist(tmp_path, "plans", "validate", str(path))
    assert done.returncode == 0, done.stderr
    assert (
        "warning: installation.json: $.steps[4].inputs.service_tier: 'order.service_tier' "
        "is optional in an order and has no fallback"
    ) in done.stderr
    assert "1 plan file(s) valid." in done.stdout


def test_plans_validate_warns_that_a_legacy_list_plan_is_deprecated(tmp_path: Path) -> None:
    done = techassist(tmp_path, "plans", "validate", str(FIXTURES / "installation_plan.json"))
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "installation_plan.json" in done.stderr


def test_the_program_refuses_to_start_on_an_invalid_plan(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "bad.json").write_text((FIXTURES / "bad_semantics.json").read_text())
    done = techassist(tmp_path, "chat", stdin="AB1234\n", TECHASSIST_PLANS_DIR=str(plans))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: the plans are invalid, so TechAssist will not start" in done.stderr
    assert "bad.json: $." in done.stderr


@pytest.mark.parametrize("cuid_flag", [False, True])
def test_terminal_chat_completes_a_repair(tmp_path: Path, cuid_flag: bool) -> None:
    lines = ["yes", "ONT_FAULT", "CXNK00778899", "end"]
    args = ["chat", "--cuid", "CD5678"] if cuid_flag else ["chat"]
    stdin = "\n".join(lines if cuid_flag else ["CD5678", *lines]) + "\n"
    done = techassist(tmp_path, *args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    assert "ONT replaced" in done.stdout and "Order ORD-2001 is closed" in done.stdout
    assert "Orders completed this session: ORD-2001" in done.stdout


def test_terminal_chat_resumes_after_quitting(tmp_path: Path) -> None:
    first = techassist(tmp_path, "chat", "--cuid", "AB1234", stdin="yes\nALCL90ABCDEF\nquit\n")
    assert "progress is saved" in first.stdout
    second = techassist(tmp_path, "chat", "--cuid", "AB1234", stdin="")
    assert "Welcome back, Alice Brown" in second.stdout and "step 2 of 7" in second.stdout
    assert second.returncode == 0


def test_the_data_directory_defaults_to_the_home_directory(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    environment["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "orders", "seed"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".local" / "share" / "techassist" / "workorders.db").exists()


def test_a_bad_setting_stops_the_program_with_its_variable_named(tmp_path: Path) -> None:
    done = techassist(tmp_path, "orders", "seed", TECHASSIST_TOOL_TIMEOUT="-1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: TECHASSIST_TOOL_TIMEOUT='-1' (from the environment) is invalid: Input should be "
        "greater than 0; correct it or unset it to use the default (30.0)"
    ]


def test_orders_list_says_so_when_a_technician_has_no_orders(tmp_path: Path) -> None:
    table = techassist(tmp_path, "orders", "list", "--cuid", "ef9012")
    assert table.returncode == 0, table.stderr
    assert table.stdout.strip() == "EF9012 has no orders."
    listed = techassist(tmp_path, "orders", "list", "--cuid", "EF9012", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """``techassist orders list --json | head -1``: the reader leaves before the output ends."""
    assert techassist(tmp_path, "orders", "seed").returncode == 0
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    environment["TECHASSIST_DATA_DIR"] = str(tmp_path)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "orders", "list", "--cuid", "AB1234", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 1


def test_version_comes_from_the_installed_package(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = techassist(tmp_path, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"techassist {version('techassist')}"


def test_every_command_has_a_description_and_every_option_a_help_text() -> None:
    import argparse

    from bot.cli import _parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser) -> None:
        if not parser.description:
            missing.append(parser.prog)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif not action.help:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}")

    walk(_parser())
    assert missing == []


@pytest.mark.parametrize("make_files", [False, True])
def test_plans_validate_with_no_plans_fails(tmp_path: Path, make_files: bool) -> None:
    plans = tmp_path / "plans"
    if make_files:
        plans.mkdir()
        (plans / "plan.schema.json").write_text("{}")
    done = techassist(tmp_path, "plans", "validate", TECHASSIST_PLANS_DIR=str(plans))
    assert done.returncode == 1 and "valid" not in done.stdout
    assert f"error: the plans directory {plans}" in done.stderr
    assert ("has no plan files" if make_files else "does not exist") in done.stderr


def test_setting_names_of_choices_take_any_case(tmp_path: Path) -> None:
    done = techassist(
        tmp_path,
        "orders",
        "seed",
        TECHASSIST_LOG_LEVEL="debug",
        TECHASSIST_STORE="SQLite",
        TECHASSIST_SQLITE_SYNCHRONOUS="full",
    )
    assert done.returncode == 0, done.stderr


def live_chat(tmp_path: Path, *args: str, **env: str) -> Live:
    return Live(
        ["-m", "bot.cli", "chat", "--cuid", "AB1234", *args],
        environment(tmp_path, **env),
        cwd=tmp_path,
    )


def test_ctrl_c_in_chat_leaves_at_once_with_the_goodbye_of_quit(tmp_path: Path) -> None:
    chat = live_chat(tmp_path)
    chat.wait_for("Shall we start it? (yes/no)")
    chat.interrupt()
    code, stderr = chat.wait(timeout=5)
    assert code == 0 and "Traceback" not in stderr
    assert "Your progress is saved" in chat.stdout
    # The session was kept: the next chat welcomes the technician back.
    again = techassist(tmp_path, "chat", "--cuid", "AB1234", stdin="")
    assert "Welcome back, Alice Brown" in again.stdout


def test_ctrl_c_during_a_slow_step_leaves_at_once(tmp_path: Path) -> None:
    chat = live_chat(tmp_path, TECHASSIST_SIM_LATENCY_MS="20000")
    chat.wait_for("Shall we start it? (yes/no)")
    chat.type("yes")
    chat.wait_for("FSAN")
    chat.type("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")  # 20 s of simulator
    time.sleep(0.5)
    chat.interrupt()
    code, stderr = chat.wait(timeout=5)
    assert code == 0 and "Traceback" not in stderr
    assert "Your progress is saved" in chat.stdout
