"""The terminal client against the real server, run as a technician runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.screen import details
from tests.bot.live import ROOT, Live, environment
from tests.bridges.server import Server, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("client")) as srv:
        yield srv


def client(server: Server, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "client", "--url", server.url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env=environment(),
        cwd=ROOT,
    )


@pytest.mark.parametrize("word", ["quit", "exit", "q", "QUIT"])
def test_quit_at_the_cuid_prompt_leaves_without_sending_it(server: Server, word: str) -> None:
    done = client(server, f"{word}\n")
    assert done.returncode == 0, done.stderr
    assert "Bye" in done.stdout and "couldn't identify you" not in done.stdout


def test_end_of_input_at_the_cuid_prompt_ends_the_client(server: Server) -> None:
    done = client(server, "")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) < 5


def test_end_of_input_after_an_unknown_cuid_ends_the_client(server: Server) -> None:
    """It used to send 'quit' as a CUID for ever: thousands of lines in seconds."""
    done = client(server, "ZZ0000\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("couldn't identify you") == 1
    assert len(done.stdout.splitlines()) < 10


def test_quit_when_the_cuid_is_asked_again_says_goodbye(server: Server) -> None:
    done = client(server, "ZZ0000\nquit\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("couldn't identify you") == 1 and "Goodbye" in done.stdout


def test_the_screen_shows_the_question_and_its_choices_and_details_on_request(
    server: Server,
) -> None:
    done = client(server, "details\nno\nquit\n", "--cuid", "AB1234")
    assert done.returncode == 0, done.stderr
    # The question is the last thing shown before the prompt, its choices under it.
    before, after = done.stdout.split("Shall we start it? (yes/no)\n  [yes | no]\n> ", 1)
    assert "Order ID" not in before and after.startswith("Order:\n  Order ID: ORD-1003\n")
    assert "Service tier: 1G" in after and "Customer: Ada Lovelace" in after
    # The order picker lists the orders once, in the message; the choices are the numbers.
    picker = after.split("Which order would you like instead?", 1)[1]
    assert (
        picker.count("ORD-1005") == 1 and "[1 | 2 | 3 | 4 | 5 | 6 | none]" in picker
    )  # ORD-1004 waits for a plan
    for raw in ("True", "False", "None", "['", "{'"):
        assert raw not in done.stdout


def test_details_reads_like_a_form_not_python() -> None:
    data = {
        "completed": ["ORD-1003", "ORD-1005"],
        "light_ok": True,
        "closed_at": None,
        "order": {"order_id": "ORD-1", "ont_serial": "ALCL90ABCDEF", "on_hold": False},
        "results": [{"rx_power_dbm": -18.5}],
    }
    assert details(data) == [
        "Completed: ORD-1003, ORD-1005",
        "Light ok: yes",
        "Order:",
        "  Order ID: ORD-1",
        "  ONT serial: ALCL90ABCDEF",
        "  On hold: no",
        "Results:",
        "  1. RX power dBm: -18.5",
    ]


def test_ctrl_c_at_a_prompt_leaves_at_once(server: Server) -> None:
    live = Live(["-m", "bot.cli", "client", "--url", server.url], environment())
    live.wait_for("Your CUID: ")
    live.interrupt()
    code, stderr = live.wait(timeout=5)
    assert code == 0 and "Traceback" not in stderr and "Bye" in live.stdout


def test_ctrl_c_in_a_conversation_leaves_at_once(server: Server) -> None:
    live = Live(["client.py", "--url", server.url, "--cuid", "CD5678"], environment())
    live.wait_for("[yes | no]")
    live.interrupt()
    code, stderr = live.wait(timeout=5)
    assert code == 0 and "Traceback" not in stderr
    assert "progress is kept" in live.stdout


def test_a_lost_server_is_reported_once(tmp_path: Path) -> None:
    with running(tmp_path) as srv:
        live = Live(
            ["-m", "bot.cli", "client", "--url", srv.url, "--cuid", "AB1234"], environment()
        )
        live.wait_for("[yes | no]")
        srv.kill()
        live.type("yes")
        code, stderr = live.wait(timeout=10)
    assert code == 1 and "Traceback" not in stderr
    assert live.stdout.count("connection was lost") == 1
