"""Benchmark: one TechAssist instance against two, on one Redis store and PostgreSQL work orders.

Run ``python -m bench.instances [--conversations N] [--pace S] [--redis URL] [--postgres URL]``.
It starts two real ``techassist serve`` processes on 127.0.0.1, each with a data
directory of its own, sharing what several instances share in production: the
sessions, leases and processed ids on one Redis server (under a key prefix of
the bench's own, deleted at the end), and the work orders in a PostgreSQL
database of the bench's own (created and migrated, loaded with
``techassist orders import``, dropped at the end). Nothing is flushed.

Then, one after the other in the same run, each with N fresh technicians doing
the whole installation of ``bench.core``'s script through the legacy websocket
protocol, one frame every S seconds per conversation (starts spread over one
interval; ``--pace 0`` sends each frame as soon as the last reply came):

- ``1 instance``: every conversation on the first instance;
- ``2 instances``: half the conversations on each, each staying where it began;
- ``every turn elsewhere``: each conversation reconnects to the other instance
  before every message (connect, CUID, then the message), so consecutive turns
  of a session always run on different instances.

Per phase it prints the frames answered per second, p50/p99 of a frame's
latency (send to reply), the servers' CPU per server turn, and, from each
instance's ``/metrics`` (before and after, summed over both), per server turn:
the turns that waited over 1 ms for their session's lock, the mean lock wait,
the stale saves and the lease losses. On a machine whose few cores also run
Redis, PostgreSQL and the clients, the two-instance figures measure the
overhead of a second process, not scaling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from websockets.asyncio.client import ClientConnection, connect

from bench.core import dataset, good_serials, pct, server_version, temporary_database
from bench.processes import import_orders
from bench.redis_store import DEFAULT_POSTGRES, delete_prefix, machine, redis_version
from bench.redis_store import DEFAULT_URL as DEFAULT_REDIS
from bench.ws import (
    PHASE_TIMEOUT,
    Server,
    bench_env,
    check_techassist,
    frames_for,
    raise_fd_limit,
    running,
)

SERVE = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
#: Seconds a metrics scrape may take.
SCRAPE_TIMEOUT = 10.0
#: Lock waits longer than these (seconds, histogram bucket bounds) are counted apart: a free
#: lease takes one round trip (~0.2 ms on a quiet machine); a held one, polls 5 to 100 ms apart.
WAITED = "0.001"
WAITED_LONG = "0.05"


# --- /metrics ---------------------------------------------------------------------------


def scrape(server: Server) -> dict[str, float]:
    """One instance's samples by name with labels, from its ``/metrics`` (no proxy)."""
    url = server.url.replace("ws://", "http://").removesuffix("/start_task") + "/metrics"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=SCRAPE_TIMEOUT) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@dataclass(frozen=True)
class Counts:
    """What the instances' metrics counted over a phase, summed over the instances."""

    turns: float = 0.0
    lock_waits: float = 0.0  # turns whose lock wait was observed
    waited: float = 0.0  # of those, the ones over WAITED seconds
    waited_long: float = 0.0  # and over WAITED_LONG seconds
    lock_wait_seconds: float = 0.0
    stale_saves: float = 0.0
    lease_losses: float = 0.0

    @classmethod
    def of(cls, samples: dict[str, float]) -> Counts:
        waits = samples.get("techassist_lock_wait_seconds_count", 0.0)
        bucket = 'techassist_lock_wait_seconds_bucket{{le="{}"}}'
        quick = samples.get(bucket.format(WAITED), 0.0)
        short = samples.get(bucket.format(WAITED_LONG), 0.0)
        return cls(
            turns=sum(
                v for k, v in samples.items() if k.startswith("techassist_turn_seconds_count")
            ),
            lock_waits=waits,
            waited=waits - quick,
            waited_long=waits - short,
            lock_wait_seconds=samples.get("techassist_lock_wait_seconds_sum", 0.0),
            stale_saves=samples.get("techassist_stale_saves_total", 0.0),
            lease_losses=samples.get("techassist_lease_losses_total", 0.0),
        )

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.row(), other.row(), strict=True)))

    def __sub__(self, other: Counts) -> Counts:
        return Counts(*(a - b for a, b in zip(self.row(), other.row(), strict=True)))

    def row(self) -> tuple[float, ...]:
        return (
            self.turns,
            self.lock_waits,
            self.waited,
            self.waited_long,
            self.lock_wait_seconds,
            self.stale_saves,
            self.lease_losses,
        )


def counted(servers: list[Server]) -> Counts:
    total = Counts()
    for server in servers:
        total = total + Counts.of(scrape(server))
    return total


def cpu(servers: list[Server]) -> float:
    return sum(server.cpu_seconds() for server in servers)


# --- clients ----------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase's conversations measured."""

    name: str
    conversations: int
    frames: list[float] = field(default_factory=list)  # seconds from send to reply
    resumes: list[float] = field(default_factory=list)  # connect + CUID, elsewhere only
    failures: list[str] = field(default_factory=list)
    finished: int = 0
    elapsed: float = 0.0
    counts: Counts = field(default_factory=Counts)
    server_cpu: float = 0.0


class Pace:
    """When a conversation may send its next frame: every ``interval`` from its start."""

    def __init__(self, interval: float, offset: float) -> None:
        self.interval = interval
        self.next = time.perf_counter() + offset

    async def wait(self) -> None:
        """Sleep until the next send time (at once if the last reply came after it)."""
        delay = self.next - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        self.next = max(self.next, time.perf_counter()) + self.interval


def _connect(url: str) -> connect:
    """A legacy client's connection, as ``bench.ws`` opens it."""
    return connect(url, compression=None, max_size=2**20, open_timeout=PHASE_TIMEOUT, proxy=None)


async def _frame(ws: ClientConnection, frame: str, into: list[float], last: bool) -> None:
    """Send one frame, time its reply, and check it is the one the script expects."""
    t0 = time.perf_counter()
    await ws.send(frame)
    raw = await ws.recv(decode=True)
    into.append(time.perf_counter() - t0)
    assert isinstance(raw, str)
    problem = check_techassist(frame, raw, last)
    if problem:
        raise AssertionError(problem)


async def staying(url: str, frames: list[str], pace: Pace, phase: Phase) -> None:
    """A conversation on one connection to one instance, a frame at every pace."""
    async with _connect(url) as ws:
        for i, frame in enumerate(frames, 1):
            await pace.wait()
            await _frame(ws, frame, phase.frames, i == len(frames))


async def elsewhere(urls: list[str], frames: list[str], pace: Pace, phase: Phase) -> None:
    """A conversation that opens each message's connection on the other instance.

    The first frame (the CUID) goes to ``urls[0]``; before each later message the
    client connects to the next instance, gives its CUID (the server resumes the
    session from the store) and sends the message.
    """
    cuid, messages = frames[0], frames[1:]
    await pace.wait()
    async with _connect(urls[0]) as ws:
        await _frame(ws, cuid, phase.frames, False)
    for i, message in enumerate(messages, 1):
        await pace.wait()
        t0 = time.perf_counter()
        async with _connect(urls[i % len(urls)]) as ws:
            await _frame(ws, cuid, [], False)
            phase.resumes.append(time.perf_counter() - t0)
            await _frame(ws, message, phase.frames, i == len(messages))


async def measured(
    phase: Phase, servers: list[Server], conversations: Sequence[Awaitable[None]]
) -> Phase:
    """Run the conversations at once, bounded by ``PHASE_TIMEOUT``; count what the servers saw."""

    async def one(conversation: Awaitable[None]) -> None:
        try:
            await conversation
            phase.finished += 1
        except Exception as exc:  # a failed conversation is counted and reported, never retried
            phase.failures.append(f"{type(exc).__name__}: {exc}"[:300])

    before, cpu0 = counted(servers), cpu(servers)
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(one(c)) for c in conversations]
    _, pending = await asyncio.wait(tasks, timeout=PHASE_TIMEOUT)
    phase.elapsed = time.perf_counter() - t0
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    phase.failures += ["timed out"] * len(pending)
    phase.server_cpu = cpu(servers) - cpu0
    phase.counts = counted(servers) - before
    return phase


def offsets(n: int, interval: float) -> list[float]:
    """Start times spread evenly over one interval, so the frames do not come in bursts."""
    return [interval * i / n for i in range(n)]


async def run_phase(
    name: str, scripts: list[list[str]], servers: list[Server], interval: float, *, switch: bool
) -> Phase:
    """One conversation per script, the i-th starting on instance i mod n; with ``switch``,
    each moves to the next instance for every message, else it stays where it began."""
    phase = Phase(name, len(scripts))
    urls = [server.url for server in servers]
    talks = []
    for i, (script, at) in enumerate(zip(scripts, offsets(len(scripts), interval), strict=True)):
        order = urls[i % len(urls) :] + urls[: i % len(urls)]
        pace = Pace(interval, at)
        talks.append(
            elsewhere(order, script, pace, phase)
            if switch
            else staying(order[0], script, pace, phase)
        )
    return await measured(phase, servers, talks)


# --- the instances ----------------------------------------------------------------------


@asynccontextmanager
async def instances(
    tmp: Path, redis_url: str, admin_url: str, orders: dict[str, Any], clients: int
) -> AsyncIterator[list[Server]]:
    """Two servers on one Redis prefix and one PostgreSQL database holding ``orders``;
    the prefix and the database are removed after."""
    prefix = f"techassist-bench:{uuid.uuid4().hex[:8]}:"
    try:
        async with temporary_database(admin_url) as database, AsyncExitStack() as stack:
            shared = {
                "TECHASSIST_STORE": redis_url,
                "TECHASSIST_REDIS_PREFIX": prefix,
                "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
                "TECHASSIST_DATABASE_URL": database,
                # Every client comes from 127.0.0.1: the connection caps are set for the run.
                "TECHASSIST_MAX_CONNECTIONS": str(clients + 64),
                "TECHASSIST_MAX_CONNECTIONS_PER_IP": str(clients + 64),
            }
            servers: list[Server] = []
            for name in ("one", "two"):
                data_dir = tmp / name
                data_dir.mkdir()
                env = bench_env(data_dir) | shared
                if not servers:
                    import_orders(orders, env=env, cwd=data_dir, timeout=120)
                servers.append(
                    await stack.enter_async_context(running(SERVE, env, data_dir / "server.log"))
                )
            yield servers
    finally:
        delete_prefix(redis_url, prefix)


async def warm_up(servers: list[Server], scripts: list[list[str]]) -> None:
    """One whole conversation on each instance, so pools and caches are warm before measuring."""
    phase = await run_phase("warm-up", scripts, servers, 0.0, switch=False)
    if phase.failures:
        raise RuntimeError(f"the warm-up conversation failed: {phase.failures[0]}")


# --- report -----------------------------------------------------------------------------


def report(phases: list[Phase]) -> None:
    print(
        f"{'phase':22} {'frames':>6} {'frames/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu ms/turn':>11} {'>1ms/turn':>9} {'>50ms/turn':>10} {'wait ms':>7} "
        f"{'stale/turn':>10} {'lost/turn':>9}"
    )
    for p in phases:
        c = p.counts
        turns = max(c.turns, 1.0)
        print(
            f"{p.name:22} {len(p.frames):6d} {len(p.frames) / p.elapsed:8.1f} "
            f"{pct(p.frames, 0.5) * 1e3:7.2f} {pct(p.frames, 0.99) * 1e3:7.2f} "
            f"{p.server_cpu / turns * 1e3:11.2f} {c.waited / turns:9.4f} "
            f"{c.waited_long / turns:10.4f} "
            f"{c.lock_wait_seconds / max(c.lock_waits, 1.0) * 1e3:7.3f} "
            f"{c.stale_saves / turns:10.4f} {c.lease_losses / turns:9.4f}"
        )
    for p in phases:
        if p.resumes:
            print(
                f"{p.name}: reconnect + CUID before each message, p50 "
                f"{pct(p.resumes, 0.5) * 1e3:.2f} ms, p99 {pct(p.resumes, 0.99) * 1e3:.2f} ms; "
                f"{p.counts.turns:.0f} server turns for {len(p.frames)} frames"
            )
    for p in phases:
        print(f"{p.name}: {p.finished} of {p.conversations} conversations finished")
        for problem in sorted(set(p.failures))[:5]:
            print(f"  FAILED x{p.failures.count(problem)}: {problem}")


async def main(conversations: int, interval: float, redis_url: str, admin_url: str) -> int:
    raise_fd_limit()
    n = conversations
    # Fresh technicians for each phase, and one per instance for the warm-up.
    serials = good_serials(3 * n + 2)
    scripts = [frames_for(serial, f"BT{i:04d}") for i, serial in enumerate(serials)]
    with tempfile.TemporaryDirectory(prefix="techassist-bench-instances-") as tmp:
        orders = dataset(serials)
        async with instances(Path(tmp), redis_url, admin_url, orders, n) as servers:
            await warm_up(servers, scripts[3 * n :])
            phases = [
                await run_phase("1 instance", scripts[:n], servers[:1], interval, switch=False),
                await run_phase("2 instances", scripts[n : 2 * n], servers, interval, switch=False),
                await run_phase(
                    "every turn elsewhere", scripts[2 * n : 3 * n], servers, interval, switch=True
                ),
            ]
    print(machine())
    pace = f"a frame every {interval:g} s each" if interval else "back to back"
    print(
        f"2 x techassist serve on 127.0.0.1; sessions on {redis_version(redis_url)} "
        f"({redis_url}), work orders on {await server_version(admin_url)}; "
        f"{n} conversations per phase, {pace}; clients in this one process"
    )
    report(phases)
    print(
        "per server turn, from /metrics: >1ms, >50ms = lock waits over that, wait ms = mean "
        "lock wait, stale = stale saves, lost = lease losses; cpu = the servers' CPU"
    )
    print(
        "on a machine whose cores also run Redis, PostgreSQL and the clients, "
        "2 instances is an overhead figure, not a scaling one"
    )
    failed = sum(len(p.failures) for p in phases)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=100, help="per phase (default: 100)")
    parser.add_argument(
        "--pace",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="seconds between a conversation's frames (default: 0.5; 0: back to back)",
    )
    parser.add_argument(
        "--redis", default=os.environ.get("TECHASSIST_TEST_REDIS_URL", DEFAULT_REDIS)
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("TECHASSIST_TEST_DATABASE_URL") or DEFAULT_POSTGRES,
        help="a PostgreSQL server where the bench may create (and drop) its database",
    )
    args = parser.parse_args()
    code = asyncio.run(
        main(max(1, args.conversations), max(0.0, args.pace), args.redis, args.postgres)
    )
    sys.exit(code)
