"""What a wheel built from the repository carries."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_carries_the_plans_and_the_demo_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("techassist-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "plans/installation.json",
        "plans/repair.json",
        "plans/plan.schema.json",
        "orchestrator_core/demo_data.json",
        # The web chat's page: no build step, the files themselves.
        "bridges/web/static/index.html",
        "bridges/web/static/chat.js",
        "bridges/web/static/chat.css",
        "bridges/web/static/signin.js",
    } <= names
    assert not any(name.startswith("tests/") for name in names)


def test_the_wheel_requires_what_runs_and_nothing_unused(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("techassist-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ") and "extra ==" not in line
        ]
        # `techassist db upgrade` on an installed wheel needs its migrations.
        assert "orchestrator_core/pg/migrations/001_initial.sql" in archive.namelist()
        assert "orchestrator_core/pg/migrations/002_sessions.sql" in archive.namelist()
    assert "uvicorn>=0.35" in requires  # the first with websockets-sansio
    # redis serves TECHASSIST_STORE=redis://, psycopg and its pool the PostgreSQL work orders.
    assert {"redis>=5", "psycopg[binary]>=3.2", "psycopg-pool>=3.2"} <= set(requires)


MAKE = shutil.which("make")


def make_python(path: Path) -> str:
    """The Python the Makefile picks with only ``path`` (and sh) to search."""
    done = subprocess.run(
        [MAKE or "make", "-s", "-f", str(ROOT / "Makefile")]
        + ["--eval", "show-python: ; @echo '[$(PYTHON)]'", "show-python"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(path)},
        cwd=path,
    )
    return done.stdout.strip()


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_make_finds_a_python_of_3_11_or_newer_by_any_name(tmp_path: Path) -> None:
    for tool in ("sh", "make", "echo"):
        (tmp_path / tool).symlink_to(shutil.which(tool) or tool)
    (tmp_path / "python3.13").symlink_to(sys.executable)
    assert make_python(tmp_path) == "[python3.13]"
    (tmp_path / "python3.13").unlink()
    (tmp_path / "python3").write_text("#!/bin/sh\nexit 1\n")  # an older Python says no
    (tmp_path / "python3").chmod(0o755)
    assert make_python(tmp_path) == "[]"


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_make_run_installs_only_what_running_needs(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    planned = subprocess.run(
        [MAKE or "make", "-n", "run", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    ).stdout
    assert "pip install --quiet -e ." in planned and "[test]" not in planned
    tested = subprocess.run(
        [MAKE or "make", "-n", "test", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    ).stdout
    for step in ("-e '.[test]'", "ruff check", "ruff format --check", "mypy", "pytest"):
        assert step in tested


def test_the_docs_stand_alone() -> None:
    """Nothing in README.md or docs/ points outside the repository or at how it was made."""
    outside = re.compile(
        r"\.\./shared/|shared/(ARCHITECTURE|PERFORMANCE|STYLE)\.md|PERFORMANCE\.md"
        r"|\bissues? #?[0-9]+\b|\b(second|third|fourth|fifth) session\b"
        r"|\bthis session's machine\b"
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line}"
        for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line)
    ]
    assert found == []
