"""What a stranger sends is not kept, secrets do not rest on disk, logs hold no bodies:
proved against the real server, its data files and its log."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from tests.bot.live import environment, techassist
from tests.bridges.server import running

TIMEOUT = 15
PASSWORD = "harbour-lantern-42"  # not the plan's own example


def sizes(data_dir: Path) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in data_dir.iterdir() if f.is_file()}


def settled_sizes(data_dir: Path) -> dict[str, int]:
    """The data files' sizes once background checkpoints have stopped changing them."""
    last = sizes(data_dir)
    for _ in range(20):
        time.sleep(1.2)  # the WAL checkpointer runs every second
        now = sizes(data_dir)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the data files never settled: {last}")


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


async def ask(ws: Any, frame: dict[str, Any] | str) -> dict[str, Any]:
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return reply


async def strangers(url: str, connections: int) -> list[dict[str, Any]]:
    """Unidentified clients sending garbage CUIDs, commands and 60 KB keys; their replies."""
    garbage: list[dict[str, Any] | str] = [
        {"type": "cuid", "data": "X" * 60_000},
        {"type": "cuid", "data": "ZZ9999"},
        {"type": "cuid", "data": "not a cuid!"},
        {"type": "message", "data": "help"},
        {"type": "message", "data": "escalate"},
        {"type": "message", "data": "status"},
        "plain text that is no JSON",
    ]
    replies = []
    for n in range(connections):
        async with connect(url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
            for frame in garbage:
                replies.append(await ask(ws, frame))
            replies.append(await ask(ws, {"type": "cuid", "data": f"Q{n:05d}" * 10_000}))
    return replies


def test_a_flood_of_unidentified_connections_writes_nothing(tmp_path: Path) -> None:
    # The per-address limit would refuse most guesses unchecked; here every one must reach
    # the core, which must keep none of them.
    with running(tmp_path, TECHASSIST_IDENTIFY_FAILURES_PER_MINUTE="100000") as server:
        before = settled_sizes(tmp_path)
        replies = asyncio.run(strangers(server.url, 30))
        after = settled_sizes(tmp_path)
    assert all(r["type"] == "input" for r in replies), replies[:3]
    assert after == before, f"unidentified connections grew the data files: {before} -> {after}"
    assert rows(tmp_path / "sessions.db", "SELECT count(*) FROM sessions") == [(0,)]
    workorders = tmp_path / "workorders.db"
    assert rows(workorders, "SELECT count(*) FROM audit") == [(0,)]
    assert rows(workorders, "SELECT count(*) FROM escalations") == [(0,)]


async def install(url: str) -> list[dict[str, Any]]:
    """The README's installation, with a dict message and the Wi-Fi password."""
    async with connect(url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        frames = [await ask(ws, {"type": "cuid", "data": "AB1234"})]
        for text in [
            "yes",
            "{'ethernet_port': 2, 'fsan': 'ALCL90ABCDEF', 'model': 'G-240W-F'}",
            f"ssid=Lovelace wifi_password={PASSWORD}",
            "yes",
            "end",
        ]:
            frames.append(await ask(ws, {"type": "message", "data": text}))
    async with connect(url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        frames.append(await ask(ws, {"type": "cuid", "data": "AB\n12\x1b[31m34"}))
    return frames


def raw_bytes(data_dir: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(data_dir.iterdir()) if f.is_file())


def test_an_installation_leaves_no_secret_on_disk_or_in_the_debug_log(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh"
    # The real CLI creates the data directory and the work orders; the server the rest.
    seeded = subprocess.run(
        [sys.executable, "-m", "bot.cli", "orders", "seed"],
        env=environment(data_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert seeded.returncode == 0, seeded.stderr
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    with running(data_dir, TECHASSIST_LOG_LEVEL="DEBUG") as server:
        frames = asyncio.run(install(server.url))
        assert "Order ORD-1003 is closed" in frames[-3]["message"]
        files = {f.name: stat.S_IMODE(f.stat().st_mode) for f in data_dir.iterdir()}
        while_running = raw_bytes(data_dir)
    log = "".join(server.output)
    for name in ("sessions.db", "workorders.db", "secret.key"):
        assert files.pop(name) == 0o600, name
    assert files and all(mode == 0o600 for mode in files.values()), files  # -wal, -shm
    assert PASSWORD.encode() not in while_running
    assert PASSWORD.encode() not in raw_bytes(data_dir)
    assert "uvicorn: < TEXT" not in log  # what main logged at DEBUG
    for secret in (PASSWORD, "ssid=Lovelace", "ethernet_port", "ALCL90ABCDEF"):
        assert secret not in log, f"{secret!r} is in the log"
    assert "\x1b" not in log and "AB\\n12\\x1b[31M34" in log
    assert log.count("generated a secret key") == 1
    with running(data_dir) as again:
        pass
    assert "generated a secret key" not in "".join(again.output)


def age(path: Path, seconds: float) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE sessions SET updated_at = updated_at - ?", (seconds,))
        db.execute("UPDATE plan_snapshots SET created_at = created_at - ?", (seconds,))


async def end_a_day(url: str, cuid: str, *, finish: bool) -> None:
    async with connect(url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        await ask(ws, {"type": "cuid", "data": cuid})
        await ask(ws, {"type": "message", "data": "end" if finish else "yes"})


def test_the_server_sweeps_expired_sessions_at_start_and_then_periodically(
    tmp_path: Path,
) -> None:
    sessions = tmp_path / "sessions.db"
    with running(tmp_path) as server:
        asyncio.run(end_a_day(server.url, "EF9012", finish=True))  # no orders: ended
        asyncio.run(end_a_day(server.url, "AB1234", finish=False))  # mid-plan
    assert len(rows(sessions, "SELECT key FROM sessions")) == 2
    age(sessions, 2 * 86_400)  # two days: past the ended TTL, within the idle one
    with running(tmp_path) as server:
        kept = [k for (k,) in rows(sessions, "SELECT key FROM sessions")]
        assert kept == ["techassist:websocket:::AB1234"]
        assert len(rows(sessions, "SELECT digest FROM plan_snapshots")) == 1
    assert "swept 1 expired session(s)" in "".join(server.output)
    age(sessions, 31 * 86_400)
    env = {"TECHASSIST_SESSION_SWEEP_INTERVAL": "0.5", "TECHASSIST_SESSION_TTL_ENDED": "1"}
    with running(tmp_path, **env) as server:
        assert rows(sessions, "SELECT count(*) FROM sessions") == [(0,)]
        assert rows(sessions, "SELECT count(*) FROM plan_snapshots") == [(0,)]
        asyncio.run(end_a_day(server.url, "EF9012", finish=True))
        assert rows(sessions, "SELECT count(*) FROM sessions") == [(1,)]
        deadline = time.monotonic() + 10
        while rows(sessions, "SELECT count(*) FROM sessions") != [(0,)]:
            assert time.monotonic() < deadline, "the periodic sweep never ran"
            time.sleep(0.2)


def test_files_left_world_readable_by_an_older_version_are_narrowed(tmp_path: Path) -> None:
    for name in ("sessions.db", "workorders.db"):
        with closing(sqlite3.connect(tmp_path / name)):
            pass
        os.chmod(tmp_path / name, 0o644)
    with running(tmp_path):
        pass
    for name in ("sessions.db", "workorders.db"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_a_bad_secret_key_stops_the_start_without_showing_it(tmp_path: Path) -> None:
    done = techassist(tmp_path, "chat", TECHASSIST_SECRET_KEY="not-a-key-hunter2")
    assert done.returncode != 0
    assert "TECHASSIST_SECRET_KEY" in done.stderr and "hunter2" not in done.stderr + done.stdout
