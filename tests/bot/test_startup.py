"""What an operator sees when ``techassist serve`` cannot start, and what its log looks like."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.live import environment
from tests.bridges.server import running


def serve(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env.setdefault("TECHASSIST_DATA_DIR", str(cwd / "data"))
    env.setdefault("TECHASSIST_PORT", "0")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(None, **env),
        cwd=cwd,
    )


def one_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a failed start; nothing else on stderr, no traceback."""
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "listening" not in done.stdout
    return lines[0]


def test_a_missing_plans_directory(tmp_path: Path) -> None:
    line = one_error(serve(tmp_path, TECHASSIST_PLANS_DIR=str(tmp_path / "nowhere")))
    assert str(tmp_path / "nowhere") in line and "does not exist" in line
    assert "TECHASSIST_PLANS_DIR" in line and "from the environment" in line


def test_an_empty_plans_directory_named_in_dot_env(tmp_path: Path) -> None:
    (tmp_path / "plans").mkdir()
    (tmp_path / ".env").write_text("TECHASSIST_PLANS_DIR=plans\n")
    line = one_error(serve(tmp_path))
    assert "has no plan files" in line and "from ./.env" in line


def test_an_unwritable_data_directory(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    where = tmp_path / "a_file" / "data"
    line = one_error(serve(tmp_path, TECHASSIST_DATA_DIR=str(where)))
    assert str(where) in line and "TECHASSIST_DATA_DIR" in line and "from the environment" in line


def test_a_bad_setting_value(tmp_path: Path) -> None:
    line = one_error(serve(tmp_path, TECHASSIST_TOOL_RETRIES="many"))
    assert "TECHASSIST_TOOL_RETRIES='many'" in line and "from the environment" in line


def test_each_bad_value_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TECHASSIST_TOOL_TIMEOUT=soon\n")
    done = serve(tmp_path, SLACK_BOT_TOKEN="xoxb-very-secret", TECHASSIST_SIM_FAILURE_RATE="2")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "TECHASSIST_TOOL_TIMEOUT='soon' (from ./.env)" in done.stderr
    assert "TECHASSIST_SIM_FAILURE_RATE='2' (from the environment)" in done.stderr
    assert "very-secret" not in done.stderr


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error(serve(tmp_path, "--port", str(port)))
        assert f"port {port}" in line and "already in use" in line and "from --port" in line
        assert "--port" in line and "TECHASSIST_PORT" in line
        line = one_error(serve(tmp_path, TECHASSIST_PORT=str(port)))
        assert "already in use" in line and "the port is from the environment" in line


def test_the_log_names_our_lines_and_uvicorn_s_in_one_format(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        pass
    lines = [line for line in server.output if not line.startswith("TechAssist listening")]
    shape = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) +[\w.]+: ")
    assert lines and all(shape.match(line) for line in lines), lines
    assert not any("uvicorn.error" in line for line in lines)
    assert any(" techassist.server: " in line for line in lines)
    assert any(" uvicorn: " in line for line in lines)


@pytest.mark.parametrize(
    ("given", "missing"),
    [("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"), ("SLACK_APP_TOKEN", "SLACK_BOT_TOKEN")],
)
def test_one_slack_token_alone_says_slack_is_off(tmp_path: Path, given: str, missing: str) -> None:
    secret = "xoxb-1234-very-secret" if given == "SLACK_BOT_TOKEN" else "xapp-1-very-secret"
    with running(tmp_path, **{given: secret}) as server:
        pass
    log = "".join(server.output)
    assert f"{given} is set but {missing} is not, so Slack is off" in log
    assert "very-secret" not in log


def test_an_unknown_setting_is_warned_about_with_the_closest_name(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TECHASSIST_LOGLEVEL=DEBUG\n")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "orders", "seed"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(tmp_path, TECHASSIST_PROT="9000"),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "TECHASSIST_PROT (in the environment)" in done.stderr
    assert "did you mean TECHASSIST_PORT?" in done.stderr
    assert "TECHASSIST_LOGLEVEL (in ./.env)" in done.stderr
    assert "did you mean TECHASSIST_LOG_LEVEL?" in done.stderr


@pytest.mark.parametrize(
    ("url", "label"),
    [
        ("redis://techassist:hunter2@127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://techassist:hunter2@127.0.0.1:5432/ta", "postgresql://127.0.0.1:5432/ta"),
    ],
)
def test_a_shared_store_without_a_secret_key_refuses_to_start(
    tmp_path: Path, url: str, label: str
) -> None:
    line = one_error(serve(tmp_path, TECHASSIST_STORE=url))
    assert "TECHASSIST_SECRET_KEY" in line and "TECHASSIST_STORE (from the environment)" in line
    assert label in line and "hunter2" not in line
    assert not (tmp_path / "data" / "secret.key").exists()


def test_an_unknown_store_is_a_bad_setting(tmp_path: Path) -> None:
    line = one_error(serve(tmp_path, TECHASSIST_STORE="mongodb://admin:hunter2@127.0.0.1/0"))
    assert "TECHASSIST_STORE" in line and "redis://" in line and "127.0.0.1/0" in line
    assert "hunter2" not in line
