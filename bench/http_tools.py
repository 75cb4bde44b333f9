"""Benchmark: turns with in-process tools against the same tools over HTTP, side by side.

Run ``python -m bench.http_tools [--conversations N] [--concurrency C]``. It
starts the real ``techassist simulate`` in a process of its own on a free
loopback port, writes a copy of ``plans/demo-http-tools.yaml`` pointing at it,
and drives the same full installation conversations through the in-memory
bridge three times in one run:

- ``in-process``: the built-in tools, calling the simulator in this process;
- ``http``: ``TECHASSIST_TOOLS_FILE`` set to that copy, every network tool a
  request to the simulator process;
- ``http 10% 5xx``: the same, while the simulator answers 10 % of the tools'
  requests with a 503 (its fault table, set through its admin endpoint); the
  idempotent tools retry with their backoff.

For each it prints turns per second and the turn p50 / p99, then the time of one
tool call (each try as the audit records it) in process and over HTTP, and the
simulator's CPU time per request it served. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.core import SCRIPT, dataset, good_serials, pct
from bench.processes import child, cpu_seconds
from bench.redis_store import machine
from bench.ws import bench_env
from bot.settings import Settings
from bot.wiring import build
from bridges.memory import MemoryBridge
from orchestrator_core.importer import import_data

ROOT = Path(__file__).resolve().parent.parent
DEMO_TOOLS = ROOT / "plans" / "demo-http-tools.yaml"
DEMO_BASE = "http://127.0.0.1:8001"
LISTENING = re.compile(rb"TechAssist simulator listening on (http://127\.0\.0\.1:\d+)")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
#: The 5xx rate of the third run, on every endpoint the installation plan calls.
ERROR_RATE = 0.1
#: The simulator's fault draws are seeded, so the faulty run meets the same 503s each time.
SIM_SEED = "1"
#: The tools the installation conversation calls over HTTP (the rest stay built in).
NETWORK_TOOLS = ("activate_ont", "check_light_levels", "configure_wifi", "run_speed_test")


@dataclass
class Run:
    """One run's figures: turn latencies, elapsed time, and each tool try's time by tool."""

    label: str
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    completed: int = 0
    tries: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failed_tries: int = 0
    sim_requests: int = 0
    sim_cpu: float = 0.0

    @property
    def turns_per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else float("nan")


@dataclass(frozen=True)
class Simulator:
    """The simulator process: its address, admin token and pid (for its CPU time)."""

    url: str
    token: str
    pid: int

    async def admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One admin request; its JSON answer (the stats)."""
        async with httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=10) as client:
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {self.token}"}
            )
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
            return answer


@asynccontextmanager
async def simulator(data_dir: Path) -> AsyncIterator[Simulator]:
    """``techassist simulate`` on a free loopback port, stopped at the end whatever happens."""
    token = secrets.token_urlsafe(24)
    env = bench_env(data_dir)
    env.update(
        TECHASSIST_SIM_HOST="127.0.0.1",
        TECHASSIST_SIM_PORT="0",
        TECHASSIST_SIM_ADMIN_TOKEN=token,
        TECHASSIST_SIM_SEED=SIM_SEED,
    )
    argv = [sys.executable, "-m", "bot.cli", "simulate", "--host", "127.0.0.1", "--port", "0"]

    def ready(line: bytes) -> str | None:
        match = LISTENING.search(line)
        return match.group(1).decode() if match else None

    async with child(
        argv,
        env=env,
        cwd=data_dir,
        log=data_dir / "simulate.log",
        ready=ready,
        start_timeout=START_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    ) as (proc, url):
        yield Simulator(url, token, proc.pid)


def tools_file_for(url: str, directory: Path) -> Path:
    """A copy of the demo tools file calling the simulator at ``url`` (its ``$schema`` dropped)."""
    data = yaml.safe_load(DEMO_TOOLS.read_text(encoding="utf-8"))
    data.pop("$schema", None)
    for tool in data["tools"].values():
        tool["url"] = tool["url"].replace(DEMO_BASE, url)
    path = directory / "bench-http-tools.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


async def conversation(bridge: MemoryBridge, serial: str, cuid: str, run: Run) -> None:
    """One installation, start to end; a conversation a failure took elsewhere still counts
    its turns, and is not counted as completed."""
    t0 = time.perf_counter()
    await bridge.start(cuid)
    run.latencies.append(time.perf_counter() - t0)
    replies = []
    for line in SCRIPT:
        text = line % serial if "%s" in line else line
        t0 = time.perf_counter()
        replies = await bridge.say(text)
        run.latencies.append(time.perf_counter() - t0)
    if replies and "Orders completed this session" in replies[-1].text:
        run.completed += 1


async def measure(label: str, conversations: int, concurrency: int, tools_file: Path | None) -> Run:
    """The conversations on fresh services (and a fresh data directory), C at a time."""
    run = Run(label)
    with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            seed_demo=False,
            log_level="WARNING",
            tools_file=tools_file,
        )
        services = await build(settings)
        serials = good_serials(conversations)
        await import_data(services.workorders, dataset(serials))
        queue = list(enumerate(serials))

        async def worker() -> None:
            while queue:
                i, serial = queue.pop()
                cuid = f"BT{i:04d}"
                await conversation(MemoryBridge(services.orchestrator, cuid), serial, cuid, run)

        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            run.elapsed = time.perf_counter() - t0
            for row in await services.audit.audit_rows():
                run.tries[row["tool"]].append(row["duration_ms"] / 1e3)
                run.failed_tries += not row["ok"]
        finally:
            await services.aclose()
    return run


async def over_http(
    sim: Simulator,
    label: str,
    conversations: int,
    concurrency: int,
    tools_file: Path,
    faults: dict[str, Any] | None = None,
) -> Run:
    """A run against the simulator process, fresh (no activations, no kept answers) with
    ``faults`` as its fault table; its requests and CPU time are counted apart."""
    await sim.admin("POST", "/admin/reset")  # also puts back the faults it started with: none
    if faults:
        await sim.admin("PUT", "/admin/faults", faults)
    cpu0 = cpu_seconds(sim.pid)
    run = await measure(label, conversations, concurrency, tools_file)
    run.sim_cpu = cpu_seconds(sim.pid) - cpu0
    run.sim_requests = sum((await sim.admin("GET", "/admin/stats"))["requests"].values())
    return run


def print_turns(runs: list[Run]) -> None:
    print(
        f"  {'':14} {'turns/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
        f" {'completed':>10} {'tries failed':>13}"
    )
    for run in runs:
        lat = run.latencies
        done = f"{run.completed}/{len(lat) // (len(SCRIPT) + 1)}"
        print(
            f"  {run.label:14} {run.turns_per_second:8.0f} {pct(lat, 0.5) * 1e3:8.2f}"
            f" {pct(lat, 0.99) * 1e3:8.2f} {statistics.fmean(lat) * 1e3:8.2f}"
            f" {done:>10} {run.failed_tries:13d}"
        )


def print_calls(local: Run, http: Run) -> None:
    """Each network tool's try time in process and over HTTP, and the difference (p50)."""
    print("one tool try (the audit's duration), p50 / p99 ms:")
    print(f"  {'tool':20} {'in-process':>17} {'http':>17} {'overhead p50':>13}")
    for tool in NETWORK_TOOLS:
        a, b = local.tries[tool], http.tries[tool]
        print(
            f"  {tool:20} {pct(a, 0.5) * 1e3:8.3f} / {pct(a, 0.99) * 1e3:6.3f}"
            f" {pct(b, 0.5) * 1e3:8.3f} / {pct(b, 0.99) * 1e3:6.3f}"
            f" {(pct(b, 0.5) - pct(a, 0.5)) * 1e3:+12.3f}"
        )


def print_simulator(runs: list[Run]) -> None:
    for run in runs:
        per = run.sim_cpu / run.sim_requests if run.sim_requests else float("nan")
        print(
            f"  {run.label:14} {run.sim_requests:6d} requests, "
            f"simulator CPU {run.sim_cpu:.2f} s = {per * 1e3:.3f} ms per request"
        )


def without_proxies() -> None:
    """Forget any HTTP proxy of the environment: the tools' client would send the requests
    for the loopback simulator through it, and measure the proxy."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        os.environ.pop(name, None)


async def main(conversations: int, concurrency: int) -> None:
    without_proxies()
    with tempfile.TemporaryDirectory(prefix="techassist-bench-") as tmp:
        async with simulator(Path(tmp)) as sim:
            tools_file = tools_file_for(sim.url, Path(tmp))
            # A short warm-up of both, then the measured runs in one order.
            await measure("warm-up", concurrency, concurrency, None)
            await over_http(sim, "warm-up", concurrency, concurrency, tools_file)
            local = await measure("in-process", conversations, concurrency, None)
            http = await over_http(sim, "http", conversations, concurrency, tools_file)
            faults = {tool: {"error_rate": ERROR_RATE} for tool in NETWORK_TOOLS}
            faulty = await over_http(
                sim, "http 10% 5xx", conversations, concurrency, tools_file, faults
            )
    print(machine())
    print(
        f"conversations: {conversations} per run, {concurrency} at a time, "
        f"{len(local.latencies)} turns per run; simulator: techassist simulate in its own process"
    )
    print("turns (the same installation conversations in each run):")
    print_turns([local, http, faulty])
    print(
        f"ratio http / in-process: turns/s {http.turns_per_second / local.turns_per_second:.2f}, "
        f"p50 {pct(http.latencies, 0.5) / pct(local.latencies, 0.5):.2f}, "
        f"p99 {pct(http.latencies, 0.99) / pct(local.latencies, 0.99):.2f}"
    )
    print(
        f"ratio http 10% 5xx / http: turns/s "
        f"{faulty.turns_per_second / http.turns_per_second:.2f}, "
        f"p99 {pct(faulty.latencies, 0.99) / pct(http.latencies, 0.99):.2f}"
    )
    print_calls(local, http)
    print("the simulator process:")
    print_simulator([http, faulty])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--conversations", type=int, default=100, choices=range(1, 5001), metavar="N"
    )
    parser.add_argument("--concurrency", type=int, default=1, choices=range(1, 65), metavar="C")
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.concurrency))
