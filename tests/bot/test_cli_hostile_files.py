"""Files an operator may be handed: `orders import` and `plans validate` as real processes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from plans import PLANS_DIR
from tests.bot.live import techassist


def _one_error_line(stderr: str, *words: str) -> str:
    """The one line of stderr; it starts with ``error:`` and names each of ``words``."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for word in words:
        assert word in lines[0], stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory"])
def test_orders_import_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    """/dev/zero used to be read until memory ran out; a FIFO would wait for a writer."""
    if kind == "fifo":
        target = tmp_path / "orders.json"
        os.mkfifo(target)
    elif kind == "directory":
        target = tmp_path / "orders"
        target.mkdir()
    else:
        target = Path(kind)
    done = techassist(tmp_path, "orders", "import", str(target))
    assert done.returncode == 1
    _one_error_line(
        done.stderr, str(target), "not a regular file" if kind != "directory" else "a directory"
    )


def test_orders_import_refuses_a_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_text(json.dumps({"technicians": []}) + " " * 2000)
    done = techassist(tmp_path, "orders", "import", str(path), TECHASSIST_IMPORT_MAX_BYTES="1000")
    assert done.returncode == 1
    _one_error_line(done.stderr, str(path), "1,000 bytes", "TECHASSIST_IMPORT_MAX_BYTES")
    within = techassist(tmp_path, "orders", "import", str(path), TECHASSIST_IMPORT_MAX_BYTES="4000")
    assert within.returncode == 0, within.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"technicians": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper than 32 levels"),
        ('{"technicians": ' + "[" * 100 + "]" * 100 + "}", "nests deeper than 32 levels"),
        ('{"technicians": [', "invalid JSON"),
        ('{"technicians": [{"cuid": "ZZ0001", "name": "\\ud800"}]}', "not valid Unicode"),
    ],
    ids=["5000 deep", "100 deep", "truncated", "lone surrogate"],
)
def test_orders_import_of_a_bad_file_is_one_clear_line(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "orders.json"
    path.write_text(content)
    done = techassist(tmp_path, "orders", "import", str(path))
    assert done.returncode == 1
    _one_error_line(done.stderr, str(path), says)
    listed = techassist(tmp_path, "orders", "list", "--cuid", "ZZ0001")
    assert "No technician with CUID ZZ0001" in listed.stderr  # nothing was imported


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"^([A-Z])\1$", "invalid escape sequence"),
        (r"^(?=ALCL)[A-Z0-9]{12}$", "invalid perl operator"),
        (r"^(?<!X)[A-Z]+$", "invalid perl operator"),
    ],
    ids=["backreference", "lookahead", "lookbehind"],
)
def test_plans_validate_names_a_pattern_re2_cannot_take(
    tmp_path: Path, pattern: str, says: str
) -> None:
    plan = json.loads((PLANS_DIR / "installation.json").read_text(encoding="utf-8"))
    plan["parameters"]["fsan"]["pattern"] = pattern
    path = tmp_path / "installation.json"
    path.write_text(json.dumps(plan))
    done = techassist(tmp_path, "plans", "validate", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{path.name}: $.parameters.fsan.pattern: invalid regular expression" in done.stderr
    assert says in done.stderr and "RE2" in done.stderr
