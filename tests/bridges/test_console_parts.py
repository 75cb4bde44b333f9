"""The console's own pieces: the sign-in limiter, the cookie format and the live feed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from bridges.web.console import Feed, Keys, LoginLimiter, decode_cookie, encode_cookie

ROOT = Path(__file__).resolve().parents[2]


def test_failures_are_counted_per_name_and_address_within_the_window() -> None:
    now = [1000.0]
    limiter = LoginLimiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.blocked("Ana", "10.0.0.1")
        limiter.failed("Ana", "10.0.0.1")
    assert limiter.blocked("ana", "10.0.0.1")  # names compare without case
    assert not limiter.blocked("ana", "10.0.0.2")
    assert not limiter.blocked("bob", "10.0.0.1")
    now[0] += 61
    assert not limiter.blocked("ana", "10.0.0.1")
    limiter.failed("ana", "10.0.0.1")
    limiter.succeeded("ana", "10.0.0.1")
    assert limiter._failures == {}


def test_a_cookie_opens_only_with_its_key_and_before_it_expires() -> None:
    key, other = b"k" * 32, b"o" * 32
    cookie = encode_cookie(key, "ana", "sid", 2000)
    session = decode_cookie(key, cookie, 1999)
    assert session is not None and (session.operator, session.sid) == ("ana", "sid")
    assert decode_cookie(key, cookie, 2000) is None
    assert decode_cookie(other, cookie, 1000) is None
    assert decode_cookie(key, cookie + "x", 1000) is None
    assert decode_cookie(key, None, 1000) is None
    assert decode_cookie(key, "a.b.c", 1000) is None


def test_csrf_tokens_are_bound_to_the_session_and_the_key() -> None:
    keys = Keys(b"c" * 32, b"s" * 32)
    token = keys.csrf("session", "one")
    assert keys.check_csrf("session", "one", token)
    assert not keys.check_csrf("session", "two", token)
    assert not keys.check_csrf("login", "one", token)
    assert not keys.check_csrf("session", "one", None)
    assert not Keys(b"c" * 32, b"t" * 32).check_csrf("session", "one", token)


async def test_the_feed_sends_each_kind_only_when_it_changed() -> None:
    state: dict[str, Any] = {
        "sessions": [{"key": "ws::AB1234", "idle_seconds": 1.0}],
        "queue": [],
    }

    async def poll() -> tuple[list[Any], list[Any]]:
        return list(state["sessions"]), list(state["queue"])

    feed = Feed(poll, interval=3600)
    subscriber = feed.subscribe()
    await feed.refresh()
    assert set(subscriber.take()) == {"sessions", "queue"}
    state["sessions"] = [{"key": "ws::AB1234", "idle_seconds": 2.0}]  # only idle time moved
    await feed.refresh()
    assert subscriber.take() == {}
    state["queue"] = [{"id": "ESC-0001", "status": "open"}]
    await feed.refresh()
    assert set(subscriber.take()) == {"queue"}
    late = feed.subscribe()  # a new stream starts with the current state
    assert set(late.take()) == {"sessions", "queue"}
    feed.unsubscribe(subscriber)
    feed.unsubscribe(late)
    assert feed.task is None
    await asyncio.sleep(0)


def test_the_wheel_carries_the_console_page(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("techassist-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"bridges/web/static/ops.{ext}" for ext in ("html", "js", "css")} <= names
