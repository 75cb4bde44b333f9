"""What a wheel built from the repository carries."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

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
    } <= names
    assert not any(name.startswith("tests/") for name in names)
