"""Benchmark: turns on the Redis session store against the SQLite one, side by side.

Run ``python -m bench.redis_store [--conversations N] [--concurrency C] [--url URL]
[--postgres URL]``. Both runs drive the same full installation conversations
through the in-memory bridge, C at a time, with the work orders on SQLite; only
``TECHASSIST_STORE`` differs. For Redis it counts the round trips: every request
the client writes to a connection and waits for (a pipeline is one), per turn.
The Redis keys live under a prefix of their own, deleted at the end; nothing is
flushed.

With ``--postgres`` (a server where it may create a database; ``--postgres ''``
skips it), a third run keeps the sessions on Redis and puts the work orders and
the tool audit on PostgreSQL, in a database of its own, dropped after. It is
reported with no target: its turns wait on two servers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from cryptography.fernet import Fernet
from redis.asyncio.connection import Connection

from bench.core import conversation, dataset, good_serials, pct, server_version, temporary_database
from bot.settings import Settings
from bot.wiring import build
from bridges.memory import MemoryBridge
from orchestrator_core.importer import import_data

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


#: Commands a new connection sends once (redis-py's handshake); not a turn's work.
HANDSHAKE = (b"HELLO", b"CLIENT", b"AUTH", b"SELECT")


class RoundTrips:
    """Counts the requests redis-py's asyncio connections send (one per round trip).

    The handshake of each new pooled connection is counted apart (``handshakes``).
    """

    def __init__(self) -> None:
        self.count = 0
        self.handshakes = 0
        self._send: Callable[..., Awaitable[None]] = Connection.send_packed_command

    def __enter__(self) -> RoundTrips:
        send = self._send

        async def counted(conn: Connection, command: Any, *args: Any, **kwargs: Any) -> None:
            head = command if isinstance(command, bytes | str) else b"".join(command[:1])
            head = head.encode() if isinstance(head, str) else head
            if any(name in head[:24].upper() for name in HANDSHAKE):
                self.handshakes += 1
            else:
                self.count += 1
            await send(conn, command, *args, **kwargs)

        Connection.send_packed_command = counted  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        Connection.send_packed_command = self._send  # type: ignore[method-assign,assignment]


async def run(
    store: str, conversations: int, concurrency: int, **extra: Any
) -> tuple[float, list[float], int]:
    """Turns per second, turn latencies and Redis round trips for one store."""
    with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            seed_demo=False,
            log_level="WARNING",
            store=store,
            **extra,
        )
        services = await build(settings)
        serials = good_serials(conversations)
        await import_data(services.workorders, dataset(serials))
        latencies: list[float] = []
        queue = list(enumerate(serials))

        async def worker() -> None:
            while queue:
                i, serial = queue.pop()
                cuid = f"BT{i:04d}"
                bridge = MemoryBridge(services.orchestrator, cuid)
                await conversation(bridge, serial, cuid, latencies)

        try:
            with RoundTrips() as trips:
                t0 = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - t0
        finally:
            await services.aclose()
    return len(latencies) / elapsed, latencies, trips.count


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix``: never a FLUSH, the server is shared."""
    with redis.Redis.from_url(url) as client:
        names = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if names:
            client.delete(*names)


def redis_version(url: str) -> str:
    with redis.Redis.from_url(url) as client:
        info = client.info("server")
    return f"Redis {info['redis_version']}"


def machine() -> str:
    """The line every bench here prints first: architecture, cores, Python, OS."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"machine: {platform.machine()}, {os.cpu_count()} cores, {python}, {platform.platform()}"


async def main(conversations: int, concurrency: int, url: str, postgres: str) -> None:
    prefix = f"techassist-bench:{uuid.uuid4().hex[:8]}:"
    redis_options = {"redis_prefix": prefix, "secret_key": Fernet.generate_key().decode()}
    rows: list[tuple[str, tuple[float, list[float], int]]] = []
    try:
        # One warm-up of each, then the measured runs side by side.
        await run("sqlite", concurrency, concurrency)
        await run(url, concurrency, concurrency, **redis_options)
        rows.append(("sqlite", await run("sqlite", conversations, concurrency)))
        rows.append(("redis", await run(url, conversations, concurrency, **redis_options)))
        if postgres:
            async with temporary_database(postgres) as database:
                on_pg = {**redis_options, "database_url": database}
                await run(url, concurrency, concurrency, **on_pg)
                rows.append(("redis+pg", await run(url, conversations, concurrency, **on_pg)))
    finally:
        delete_prefix(url, prefix)
    print(machine())
    orders = (
        f"work orders on SQLite{', then on ' + await server_version(postgres) if postgres else ''}"
    )
    print(
        f"redis-py {redis.__version__}, {redis_version(url)} at {url}; "
        f"{conversations} conversations, {concurrency} at a time; {orders}"
    )
    print(f"{'store':8} {'turns/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'round trips/turn':>17}")
    for name, (rate, latencies, trips) in rows:
        per_turn = f"{trips / len(latencies):.2f}" if name != "sqlite" else "-"
        p50, p99 = pct(latencies, 0.5) * 1e3, pct(latencies, 0.99) * 1e3
        print(f"{name:8} {rate:9.0f} {p50:8.3f} {p99:8.3f} {per_turn:>17}")
    ratio = rows[1][1][0] / rows[0][1][0]
    print(f"Redis throughput / SQLite: {ratio:.2f}   (target >= 0.5, with <= 2 round trips a turn)")
    print(
        "round trips counted: every request but the connection handshakes; a turn takes 2 "
        "(lease + load + repeat check; save + answer + plan snapshot + release)"
    )
    if postgres:
        print("redis+pg: sessions on Redis, work orders and audit on PostgreSQL (no target)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--url", default=os.environ.get("TECHASSIST_TEST_REDIS_URL", DEFAULT_URL))
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TECHASSIST_TEST_DATABASE_URL") or DEFAULT_POSTGRES,
        help="a PostgreSQL server where the bench may create (and drop) a database for the "
        "work orders of the third run; '' to skip that run",
    )
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.concurrency, args.url, args.postgres))
