"""Benchmark: full installation conversations through the in-memory bridge on SQLite.

Run ``python -m bench.core [--conversations N] [--synchronous NORMAL|FULL]``. In
the same run it measures a bare store load-and-save round trip of a session of
the same size, and prints the turn figures next to it as a ratio. The turns and
the round trips run with the same SQLite ``synchronous`` setting
(``TECHASSIST_SQLITE_SYNCHRONOUS``; NORMAL by default, as the server runs).
Everything runs in a temporary data directory; nothing touches the network.

With ``--postgres postgresql://…`` (a server where it may create a database),
the same conversations run once more in the same run with the work orders and
the tool audit on PostgreSQL, in a database of their own (dropped after), and
the turn figures of both are printed side by side. The sessions stay on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.metrics import Metrics
from bot.settings import Settings
from bot.wiring import Services, build, instrument
from bridges.memory import MemoryBridge
from orchestrator_core.importer import import_data
from orchestrator_core.session import Session
from orchestrator_core.session_manager import SessionManager
from orchestrator_core.simulator import LIGHT_THRESHOLD_DBM, rx_power_dbm
from orchestrator_core.sqlite_wal import Synchronous
from orchestrator_core.sqlite_workorders import SqliteWorkOrders
from orchestrator_core.stores import SqliteStore
from orchestrator_core.stores.base import Answer

MODEL = "716GE"


def good_serials(n: int) -> list[str]:
    """n ONT serials the simulator gives good light (a dark line would stop the plan)."""
    serials = (f"ALCL{i:08X}" for i in range(10 * n + 100))
    good = [s for s in serials if rx_power_dbm(s) >= LIGHT_THRESHOLD_DBM + 0.1]
    return good[:n]


def dataset(serials: list[str]) -> dict[str, Any]:
    """One technician per serial, each with one installation order for that ONT."""
    n = len(serials)
    return {
        "technicians": [{"cuid": f"BT{i:04d}", "name": f"Bench Tech {i}"} for i in range(n)],
        "orders": [
            {
                "order_id": f"BENCH-{i:05d}",
                "cuid": f"BT{i:04d}",
                "order_type": "installation",
                "status": "assigned",
                "scheduled_start": "2026-11-25T09:00:00+00:00",
                "scheduled_end": "2026-11-25T11:00:00+00:00",
                "created_at": "2026-11-20T08:00:00+00:00",
                "customer_name": f"Customer {i}",
                "address": f"{i} Bench Street",
                "service_tier": "500M",
            }
            for i in range(n)
        ],
        "inventory": [
            {"serial": serial, "model": MODEL, "status": "available"} for serial in serials
        ],
    }


SCRIPT = [
    "yes",
    "{'ethernet_port': 2, 'fsan': '%s', 'model': '716GE'}",
    "ssid=Bench wifi_password=correct-horse",
    "yes",
    "end",
]


async def conversation(
    bridge: MemoryBridge, serial: str, cuid: str, latencies: list[float]
) -> None:
    t0 = time.perf_counter()
    await bridge.start(cuid)
    latencies.append(time.perf_counter() - t0)
    for line in SCRIPT:
        text = line % serial if "%s" in line else line
        t0 = time.perf_counter()
        replies = await bridge.say(text)
        latencies.append(time.perf_counter() - t0)
        assert replies, text
    assert "Orders completed this session" in replies[-1].text, replies[-1].text


async def store_round_trips(
    path: Path, payload: str, n: int, synchronous: Synchronous
) -> list[float]:
    store = SqliteStore(path, synchronous=synchronous)
    try:
        version = await store.save("bench", payload, 0)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            loaded = await store.load("bench")
            assert loaded is not None
            version = await store.save("bench", loaded.data, version)
            times.append(time.perf_counter() - t0)
        return times
    finally:
        await store.aclose()


async def required_store_work(
    data_dir: Path, payload: str, n: int, synchronous: Synchronous
) -> tuple[list[float], list[float]]:
    """What the store must do in every turn, whatever the code around it.

    A turn with a message id looks for an earlier answer, loads the session and
    saves it together with its replies (so a repeat runs nothing again); each
    tool call adds one audit record. Returns the times of the first and of the
    second, on the same SQLite setting as the turns.
    """
    store = SqliteStore(data_dir / "floor.db", synchronous=synchronous)
    workorders = SqliteWorkOrders(data_dir / "floor-workorders.db", synchronous=synchronous)
    audit = workorders.audit_log()
    replies = json.dumps([{"kind": "prompt", "text": "x" * 300}])
    result = {"ok": True, "rx_power_dbm": -18.2}
    try:
        version = await store.save("bench", payload, 0)
        turns, audits = [], []
        for i in range(n):
            message_id = f"m{i}"
            t0 = time.perf_counter()
            assert await store.answered("bench", message_id) is None
            loaded = await store.load("bench")
            assert loaded is not None
            answer = Answer(message_id, replies)
            version = await store.save("bench", loaded.data, version, answer=answer)
            t1 = time.perf_counter()
            await audit.record_call(
                "bench", "BENCH-00000", "light", 1, 1, "check_light_levels",
                {"fsan": "ALCL00000000"}, True, None, result, 0.1,
            )  # fmt: skip
            t2 = time.perf_counter()
            turns.append(t1 - t0)
            audits.append(t2 - t1)
        return turns, audits
    finally:
        await store.aclose()
        workorders.close()


async def session_round_trips(
    path: Path, payload: str, snapshot: tuple[str, str], n: int, synchronous: Synchronous
) -> list[float]:
    """Load and save the same session through SessionManager: the store plus (de)serialization."""
    store = SqliteStore(path, synchronous=synchronous)
    manager = SessionManager(store)
    key = Session.model_validate_json(payload).key
    try:
        await store.put_snapshot(*snapshot)
        await store.save(key.as_str(), payload, 0)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            session = await manager.get_session_data(key)
            assert session is not None
            await manager.update_session_data(session)
            times.append(time.perf_counter() - t0)
        return times
    finally:
        await store.aclose()


async def mid_plan_payload(
    services: Services, serial: str, cuid: str
) -> tuple[str, tuple[str, str]]:
    """A session in the middle of its plan as stored (the size a turn loads and saves),
    and its plan snapshot (digest, JSON text)."""
    bridge = MemoryBridge(services.orchestrator, cuid)
    await bridge.start(cuid)
    for line in SCRIPT[:2]:
        await bridge.say(line % serial if "%s" in line else line)
    stored = await services.store.load(bridge.key.as_str())
    assert stored is not None
    digest = Session.model_validate_json(stored.data).plan_digest
    assert digest is not None
    snapshot = await services.store.get_snapshot(digest)
    assert snapshot is not None
    return stored.data, (digest, snapshot)


def pct(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@asynccontextmanager
async def temporary_database(admin_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database on ``admin_url``'s server, migrated; yields its URL.

    Dropped afterwards, whatever happened, so a bench leaves nothing behind.
    """
    import secrets
    from urllib.parse import urlsplit

    import psycopg

    from orchestrator_core.pg.migrate import upgrade

    name = f"techassist_bench_{secrets.token_hex(6)}"
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
        await upgrade(url)
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


async def postgres_turns(
    admin_url: str, conversations: int, synchronous: Synchronous
) -> tuple[list[float], float]:
    """The same conversations with the work orders on PostgreSQL: turn times, elapsed."""
    async with temporary_database(admin_url) as url:
        with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                seed_demo=False,
                log_level="WARNING",
                sqlite_synchronous=synchronous,
                database_url=url,
            )
            services = await build(settings)
            serials = good_serials(conversations)
            await import_data(services.workorders, dataset(serials))
            latencies: list[float] = []
            try:
                t0 = time.perf_counter()
                for i, serial in enumerate(serials):
                    cuid = f"BT{i:04d}"
                    await conversation(
                        MemoryBridge(services.orchestrator, cuid), serial, cuid, latencies
                    )
                elapsed = time.perf_counter() - t0
            finally:
                await services.aclose()
    return latencies, elapsed


def side_by_side(
    sqlite: tuple[list[float], float], postgres: tuple[list[float], float], server: str
) -> None:
    print(f"work orders on SQLite vs PostgreSQL ({server}), sessions on SQLite in both:")
    print(f"  {'':12} {'turns/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for label, (latencies, elapsed) in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        print(
            f"  {label:12} {len(latencies) / elapsed:9.0f} {pct(latencies, 0.50) * 1e3:8.3f}"
            f" {pct(latencies, 0.99) * 1e3:8.3f} {statistics.fmean(latencies) * 1e3:8.3f}"
        )


async def main(conversations: int, synchronous: Synchronous, postgres: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
        data_dir = Path(tmp)
        settings = Settings(
            data_dir=data_dir,
            seed_demo=False,
            log_level="WARNING",
            sqlite_synchronous=synchronous,
        )
        services = await build(settings)
        serials = good_serials(conversations + 1)
        await import_data(services.workorders, dataset(serials))
        spare = serials.pop()
        latencies: list[float] = []
        try:
            t0 = time.perf_counter()
            for i, serial in enumerate(serials):
                cuid = f"BT{i:04d}"
                await conversation(
                    MemoryBridge(services.orchestrator, cuid), serial, cuid, latencies
                )
            elapsed = time.perf_counter() - t0
            cuid = f"BT{conversations:04d}"
            tool_calls = len(await services.audit.audit_rows())
            payload, snapshot = await mid_plan_payload(services, spare, cuid)
        finally:
            await services.aclose()
        trips = await store_round_trips(data_dir / "rt.db", payload, len(latencies), synchronous)
        session_trips = await session_round_trips(
            data_dir / "st.db", payload, snapshot, len(latencies), synchronous
        )
        required, audits = await required_store_work(data_dir, payload, len(latencies), synchronous)

    turn_p50, turn_p99 = pct(latencies, 0.50), pct(latencies, 0.99)
    trip_p50, trip_p99 = pct(trips, 0.50), pct(trips, 0.99)
    st_p50, st_p99 = pct(session_trips, 0.50), pct(session_trips, 0.99)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {python}, {platform.platform()}")
    print(
        f"conversations: {conversations}, turns: {len(latencies)}, "
        f"session size mid-plan: {len(payload)} B, SQLite synchronous={synchronous}"
    )
    print(f"turns/s:          {len(latencies) / elapsed:10.0f}")
    ms = 1e3
    print(
        f"turn p50 / p99:   {turn_p50 * ms:8.3f} ms / {turn_p99 * ms:.3f} ms   (target p99 <= 5 ms)"
    )
    print(
        f"store round trip: {trip_p50 * ms:8.3f} ms / {trip_p99 * ms:.3f} ms "
        "(load + versioned save)"
    )
    print(
        f"session round trip: {st_p50 * 1e3:6.3f} ms / {st_p99 * 1e3:.3f} ms "
        "(SessionManager load + save: the store plus (de)serialization)"
    )
    print(f"ratio turn / store round trip, p50:   {turn_p50 / trip_p50:6.1f}   (target <= 3)")
    print(f"ratio turn / session round trip, p50: {turn_p50 / st_p50:6.1f}")
    print(f"mean turn {statistics.fmean(latencies) * 1e3:.3f} ms")
    per_turn = tool_calls / len(latencies)
    floor, audit = pct(required, 0.50) / trip_p50, pct(audits, 0.50) / trip_p50
    print(
        f"store work no turn can skip, p50: {pct(required, 0.50) * 1e6:.1f} us = {floor:.2f} "
        "round trips (repeat check, load, save with the replies)"
    )
    print(
        f"  and per tool call, p50: {pct(audits, 0.50) * 1e6:.1f} us = {audit:.2f} round trips "
        f"(its audit record); tool calls per turn here: {per_turn:.2f}"
    )
    print(
        f"  so no turn of this script can go below a ratio of about {floor + per_turn * audit:.1f} "
        "(mean tool calls; before the tools' own work and any Python)"
    )
    if postgres is not None:
        on_postgres = await postgres_turns(postgres, conversations, synchronous)
        version = await server_version(postgres)
        side_by_side((latencies, elapsed), on_postgres, version)


async def server_version(admin_url: str) -> str:
    import psycopg

    async with await psycopg.AsyncConnection.connect(admin_url) as conn:
        cur = await conn.execute(b"SHOW server_version")
        row = await cur.fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


async def observed_turns(
    conversations: int, synchronous: Synchronous, observed: bool
) -> list[float]:
    """Turn latencies of ``conversations`` conversations, with ``/metrics``' observer or none."""
    with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp), seed_demo=False, log_level="WARNING", sqlite_synchronous=synchronous
        )
        services = await build(settings)
        if observed:
            instrument(services)
        serials = good_serials(conversations)
        await import_data(services.workorders, dataset(serials))
        latencies: list[float] = []
        try:
            for i, serial in enumerate(serials):
                cuid = f"BT{i:04d}"
                await conversation(
                    MemoryBridge(services.orchestrator, cuid), serial, cuid, latencies
                )
        finally:
            await services.aclose()
    return latencies


async def observer_overhead(conversations: int, synchronous: Synchronous, rounds: int) -> None:
    """Turn p50/p99 without and with the metrics observer, in alternating rounds of one run."""
    # A 2-core machine shared with other work moves whole-turn figures by more than the
    # observer costs, so the observer's own calls are also timed on their own below.
    runs: dict[bool, list[float]] = {False: [], True: []}
    for round_no in range(rounds):
        # Each goes first in every other round, so neither always runs on a warmer process.
        for observed in (False, True) if round_no % 2 == 0 else (True, False):
            runs[observed] += await observed_turns(conversations, synchronous, observed)
    print(f"observer overhead: {rounds} alternating rounds of {conversations} conversations each")
    for observed, name in ((False, "no observer"), (True, "metrics")):
        lat = runs[observed]
        print(
            f"  {name:12s} turns {len(lat):6d}  p50 {pct(lat, 0.5) * 1e3:.3f} ms  "
            f"p99 {pct(lat, 0.99) * 1e3:.3f} ms  mean {statistics.fmean(lat) * 1e3:.3f} ms"
        )
    base, with_metrics = statistics.fmean(runs[False]), statistics.fmean(runs[True])
    print(f"  mean difference per turn: {(with_metrics - base) * 1e6:+.1f} us")
    # The same, without the noise of whole turns: what one turn's observer calls cost.
    metrics, n = Metrics(), 100_000
    key = "techassist:websocket:::AB1234"
    t0 = time.perf_counter()
    for _ in range(n):
        metrics.lock_wait(0.00001)
        metrics.tool_call("activate_ont", 0.0002, None)
        metrics.turn("websocket", key, 0.0005)
    calls = (time.perf_counter() - t0) / n
    print(f"  one turn's observer calls (lock wait, a tool call, the turn): {calls * 1e6:.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument(
        "--synchronous",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="SQLite's synchronous setting for the turns and the round trips (default: NORMAL)",
    )
    parser.add_argument(
        "--observer",
        action="store_true",
        help="also measure turns without and with the /metrics observer, side by side",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also run the turns with the work orders on PostgreSQL, in a database "
        "created (and dropped) on this server, e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.synchronous, args.postgres))
    if args.observer:
        asyncio.run(observer_overhead(args.conversations, args.synchronous, rounds=4))
