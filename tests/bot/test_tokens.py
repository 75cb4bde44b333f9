"""``techassist tokens``: issue, revoke and sign-in codes, run as an operator runs them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.bot.live import techassist


def stored_bytes(data_dir: Path) -> bytes:
    """Everything the work-order database holds on disk, its WAL included."""
    return b"".join(p.read_bytes() for p in data_dir.glob("workorders.db*"))


def test_an_issued_token_is_printed_once_and_stored_only_as_a_digest(tmp_path: Path) -> None:
    done = techassist(tmp_path, "tokens", "issue", "--cuid", "ab1234", "--ttl", "12h")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert re.fullmatch(r"tat_[A-Za-z0-9_-]{43}", token), done.stdout
    assert "AB1234" in done.stderr and token not in done.stderr
    on_disk = stored_bytes(tmp_path)
    assert token.encode() not in on_disk and token[4:].encode() not in on_disk
    assert hashlib.sha256(token.encode()).hexdigest().encode() in on_disk
    again = techassist(tmp_path, "tokens", "issue", "--cuid", "AB1234").stdout.strip()
    assert again != token


def test_tokens_are_only_issued_to_known_technicians_for_a_real_duration(tmp_path: Path) -> None:
    done = techassist(tmp_path, "tokens", "issue", "--cuid", "ZZ0000")
    assert done.returncode == 1 and "no technician with CUID 'ZZ0000'" in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    for ttl in ("0d", "soon", "-3h", "99999999999d"):
        done = techassist(tmp_path, "tokens", "issue", "--cuid", "AB1234", "--ttl", ttl)
        assert done.returncode == 2 and "--ttl" in done.stderr and done.stdout == "", ttl


def test_revoking_an_unknown_token_says_so(tmp_path: Path) -> None:
    done = techassist(tmp_path, "tokens", "revoke", "tat_nothing")
    assert done.returncode == 1 and "no such token" in done.stderr
    done = techassist(tmp_path, "tokens", "revoke")
    assert done.returncode == 2  # a token or --cuid is needed


def test_a_sign_in_code_is_six_digits_for_a_known_technician(tmp_path: Path) -> None:
    done = techassist(tmp_path, "tokens", "code", "--cuid", "ef9012")
    assert done.returncode == 0, done.stderr
    code = done.stdout.strip()
    assert re.fullmatch(r"\d{6}", code) and f"EF9012 {code}" in done.stderr
    assert techassist(tmp_path, "tokens", "code", "--cuid", "ZZ0000").returncode == 1
