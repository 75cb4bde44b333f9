"""``techassist operators``, run as a real process the way an administrator runs it."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from orchestrator_core.operators import Operators
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from tests.bot.live import environment, techassist

PASSWORD = "correct horse battery"


async def verify(data_dir: Path, name: str, password: str) -> bool:
    db = SqliteWorkOrders(data_dir / "workorders.db")
    try:
        return await Operators(db).verify(name, password)
    finally:
        db.close()


async def test_an_operator_is_added_listed_and_signs_in_with_the_password(
    tmp_path: Path,
) -> None:
    added = techassist(tmp_path, "operators", "add", "ana", "--password-stdin", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "Added operator ana."
    listed = techassist(tmp_path, "operators", "list")
    assert listed.stdout.split() == ["ana"]
    assert await verify(tmp_path, "ANA", PASSWORD)
    assert not await verify(tmp_path, "ana", PASSWORD + "!")
    assert not await verify(tmp_path, "bob", PASSWORD)
    # Only an argon2 hash is stored.
    with closing(sqlite3.connect(tmp_path / "workorders.db")) as db:
        [(stored,)] = db.execute("SELECT password_hash FROM operators").fetchall()
    assert stored.startswith("$argon2") and PASSWORD not in stored


async def test_adding_an_operator_again_sets_a_new_password(tmp_path: Path) -> None:
    techassist(tmp_path, "operators", "add", "ana", "--password-stdin", stdin=PASSWORD)
    again = techassist(
        tmp_path, "operators", "add", "ana", "--password-stdin", stdin="a new long password\n"
    )
    assert again.returncode == 0 and "new password for operator ana" in again.stdout
    assert await verify(tmp_path, "ana", "a new long password")
    assert not await verify(tmp_path, "ana", PASSWORD)
    assert techassist(tmp_path, "operators", "list").stdout.split() == ["ana"]


def test_a_short_password_or_a_bad_name_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    short = techassist(tmp_path, "operators", "add", "ana", "--password-stdin", stdin="short")
    assert short.returncode == 1 and "too short" in short.stderr
    bad = techassist(tmp_path, "operators", "add", "an a", "--password-stdin", stdin=PASSWORD)
    assert bad.returncode == 2 and "operator name" in bad.stderr
    listed = techassist(tmp_path, "operators", "list")
    assert listed.stdout == "" and "No operators yet" in listed.stderr


def test_a_removed_operator_is_gone_and_removing_again_says_so(tmp_path: Path) -> None:
    techassist(tmp_path, "operators", "add", "ana", "--password-stdin", stdin=PASSWORD)
    removed = techassist(tmp_path, "operators", "remove", "ana")
    assert removed.returncode == 0 and "Removed operator ana." in removed.stdout
    again = techassist(tmp_path, "operators", "remove", "ana")
    assert again.returncode == 1 and "no operator 'ana'" in again.stderr


def run_on_terminal(data_dir: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run ``techassist ARGS`` on a pseudo-terminal, typing each answer after a prompt;
    its exit status and everything the terminal showed."""
    env = environment(data_dir)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling one, as for a person
        try:
            os.chdir(data_dir)
            os.execve(sys.executable, [sys.executable, "-m", "bot.cli", *args], env)
        finally:
            os._exit(127)
    shown = b""
    try:
        for number, answer in enumerate(answers, 1):
            # getpass flushes what was typed ahead: answer each prompt once it is shown.
            while shown.count(b"Password") < number or not shown.rstrip().endswith(b":"):
                chunk = _read(fd)
                if not chunk:
                    raise AssertionError(f"the command ended early:\n{shown.decode()}")
                shown += chunk
            os.write(fd, answer.encode() + b"\n")
        while True:
            chunk = _read(fd)
            if not chunk:
                break
            shown += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def _read(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], 30)
    if not ready:
        raise AssertionError("the command stopped answering")
    try:
        return os.read(fd, 1024)
    except OSError:  # the child closed the terminal
        return b""


def test_the_password_is_typed_twice_at_a_prompt_that_does_not_echo_it(tmp_path: Path) -> None:
    status, shown = run_on_terminal(tmp_path, ["operators", "add", "ana"], [PASSWORD, PASSWORD])
    assert status == 0, shown
    assert "Password:" in shown and "Password again:" in shown and "Added operator ana." in shown
    assert PASSWORD not in shown


def test_two_different_passwords_change_nothing(tmp_path: Path) -> None:
    status, shown = run_on_terminal(
        tmp_path, ["operators", "add", "ana"], [PASSWORD, "something else entirely"]
    )
    assert status == 1 and "the two passwords differ" in shown
    assert techassist(tmp_path, "operators", "list").stdout == ""
