"""Benchmark: concurrent legacy websocket clients against ``techassist serve``.

Run ``python -m bench.ws [--clients N ...] [--rounds R] [--think S] [--quick]``.
For each N it starts ``techassist serve`` in a subprocess on a fresh temporary
data directory that holds a synthetic dataset (one technician, one installation
order and one good ONT per client), and runs N concurrent clients in this
process through a whole installation, exactly as the legacy client does: send
the CUID, then answer every server frame with the next line of the script,
until the final ``display`` frame and the server's close. All N clients
connect and identify, the server's RSS is read while they wait, then they are
released at once; that is repeated for R rounds of fresh technicians after one
warm-up conversation, and rates are the median round's.

In the same run, a bare websocket echo (``bench.echo_app``, on the same
FastAPI + uvicorn settings) is driven by the same client code with the same N,
rounds and frames. The figures are printed side by side: turns/s against the
echo's frames/s, latency, and the server's RSS per connected, idle client.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from bench.core import SCRIPT, dataset, good_serials, pct
from bench.processes import child, cpu_seconds, import_orders

ROOT = Path(__file__).resolve().parents[1]
DONE = "Orders completed this session"
LISTENING = re.compile(rb"listening on (ws://\S+)")
#: Bounds: a server must listen within START_TIMEOUT, a phase ends by PHASE_TIMEOUT.
START_TIMEOUT = 60.0
PHASE_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0

TARGET_RATIO = 0.3
TARGET_P99_MS = 100.0
TARGET_RSS_KIB = 100.0


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 16
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def frames_for(serial: str, cuid: str) -> list[str]:
    """The client frames of one installation: the CUID, then the script's lines."""
    lines = [line % serial if "%s" in line else line for line in SCRIPT]
    return [json.dumps({"type": "cuid", "data": cuid})] + [
        json.dumps({"type": "message", "data": line}) for line in lines
    ]


# --- server subprocesses ------------------------------------------------------------


@dataclass
class Server:
    """A server subprocess that announced where it listens."""

    proc: asyncio.subprocess.Process
    url: str

    def rss_kib(self) -> int:
        """The process's resident set size, from ``/proc/<pid>/status``."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        if match is None:
            raise RuntimeError(f"no VmRSS for pid {self.proc.pid}")
        return int(match.group(1))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)


def bench_env(data_dir: Path) -> dict[str, str]:
    """The subprocesses' environment: ours without TECHASSIST_ settings, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    env.update(
        TECHASSIST_DATA_DIR=str(data_dir),
        TECHASSIST_SEED_DEMO="false",
        TECHASSIST_LOG_LEVEL="WARNING",
    )
    return env


def _listening_url(line: bytes) -> str | None:
    match = LISTENING.search(line)
    return match.group(1).decode() if match else None


@asynccontextmanager
async def running(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[Server]:
    """Start a server subprocess, wait for its "listening on" line, and always stop it."""
    async with child(
        argv,
        env=env,
        cwd=ROOT,
        log=log,
        ready=_listening_url,
        start_timeout=START_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    ) as (proc, url):
        yield Server(proc, url)


# --- clients ------------------------------------------------------------------------


@dataclass
class Phase:
    """What one round of N clients measured against one server."""

    name: str
    clients: int
    identify: list[float] = field(default_factory=list)  # the first turn, during the ramp
    turns: list[float] = field(default_factory=list)  # every later turn, all clients released
    reply_bytes: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    finished: int = 0
    ramp: float = 0.0  # seconds from the first connect to all clients identified
    elapsed: float = 0.0  # seconds from the release to the last client's last reply
    rss_before: int = 0  # KiB, before any client of the round connected
    rss_idle: int = 0  # KiB, all clients connected, identified and waiting
    server_cpu: float = 0.0  # seconds, over the released part
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.turns) / self.elapsed if self.elapsed else 0.0

    @property
    def rss_per_client(self) -> float:
        return (self.rss_idle - self.rss_before) / self.clients


Check = Callable[[str, str, bool], str | None]


def check_techassist(sent: str, raw: str, last: bool) -> str | None:
    """Why a TechAssist reply is wrong, or None: input frames, then the summary at the end."""
    frame = json.loads(raw)
    if not last:
        if frame.get("type") != "input":
            return f"early {frame.get('type')}: {raw[:200]}"
        # Every frame of the script is sent after the CUID: a reply asking for one again
        # means the turn was not taken (or was taken as a CUID), right where it happened.
        return (
            f"asked for the CUID again: {raw[:200]}" if frame.get("data_needed") == "cuid" else None
        )
    if frame.get("type") != "display" or DONE not in frame.get("message", ""):
        return f"the installation did not finish: {raw[:300]}"
    return None


def check_echo(sent: str, raw: str, last: bool) -> str | None:
    """Why an echo reply is wrong, or None."""
    return None if raw == sent else f"echoed {raw[:100]!r} for {sent[:100]!r}"


class Ramp:
    """Counts clients that are identified and idle, or out; then lets them all go at once."""

    def __init__(self, clients: int) -> None:
        self.left = clients
        self.all_in = asyncio.Event()
        self.go = asyncio.Event()
        if clients == 0:
            self.all_in.set()

    def settle(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all_in.set()


async def _turn(ws: ClientConnection, frame: str, into: list[float], phase: Phase) -> str:
    t0 = time.perf_counter()
    await ws.send(frame)
    raw = await ws.recv(decode=True)
    into.append(time.perf_counter() - t0)
    assert isinstance(raw, str)
    phase.reply_bytes.append(len(raw))
    return raw


@dataclass(frozen=True)
class Conversation:
    """How a round's clients talk: the reply check, who closes, and the pause before a frame."""

    check: Check
    server_closes: bool
    think: float = 0.0  # mean seconds a client waits before each frame after its first


async def client(
    url: str,
    frames: list[str],
    how: Conversation,
    ramp: Ramp,
    phase: Phase,
    done_at: list[float],
    pauses: random.Random,
) -> None:
    """One legacy client: identify, wait at the gate, then answer every frame with the next."""
    settled = False
    try:
        async with connect(
            url, compression=None, max_size=2**20, open_timeout=PHASE_TIMEOUT, proxy=None
        ) as ws:
            raw = await _turn(ws, frames[0], phase.identify, phase)
            problem = how.check(frames[0], raw, len(frames) == 1)
            if problem:
                raise AssertionError(problem)
            ramp.settle()
            settled = True
            await ramp.go.wait()
            for i, frame in enumerate(frames[1:], 2):
                if how.think:
                    await asyncio.sleep(pauses.uniform(0, 2 * how.think))
                raw = await _turn(ws, frame, phase.turns, phase)
                problem = how.check(frame, raw, i == len(frames))
                if problem:
                    raise AssertionError(problem)
            done_at.append(time.perf_counter())
            if how.server_closes:
                await ws.wait_closed()
                if ws.close_code != 1000:
                    raise AssertionError(f"closed with {ws.close_code}, not 1000")
        phase.finished += 1
    except Exception as exc:  # a failed client is counted and reported, never retried
        phase.failures.append(f"{type(exc).__name__}: {exc}"[:300])
    finally:
        if not settled:
            ramp.settle()


async def run_clients(
    name: str, server: Server, scripts: list[list[str]], how: Conversation
) -> Phase:
    """Run one client per script at once; measure the ramp, the RSS when idle, and the turns."""
    phase = Phase(name, len(scripts))
    ramp = Ramp(len(scripts))
    done_at: list[float] = []
    phase.rss_before = server.rss_kib()
    deadline = time.perf_counter() + PHASE_TIMEOUT
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(client(server.url, s, how, ramp, phase, done_at, random.Random(i)))
        for i, s in enumerate(scripts)
    ]
    try:
        try:
            await asyncio.wait_for(ramp.all_in.wait(), deadline - time.perf_counter())
        except TimeoutError:
            phase.failures.append("timed out before every client was identified")
        phase.ramp = time.perf_counter() - t0
        phase.rss_idle = server.rss_kib()
        cpu0, rusage0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_SELF)
        released = time.perf_counter()
        ramp.go.set()
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
        phase.elapsed = (max(done_at) if done_at else time.perf_counter()) - released
        rusage1 = resource.getrusage(resource.RUSAGE_SELF)
        phase.server_cpu = server.cpu_seconds() - cpu0
        phase.client_cpu = (rusage1.ru_utime + rusage1.ru_stime) - (
            rusage0.ru_utime + rusage0.ru_stime
        )
        phase.failures += ["timed out"] * len(pending)
    finally:
        ramp.go.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return phase


async def run_rounds(
    name: str, server: Server, scripts: list[list[str]], n: int, how: Conversation
) -> list[Phase]:
    """A warm-up conversation (the last script), then rounds of n clients one after another.

    The warm-up keeps one-time costs (lazy imports, caches, the first statements)
    out of the RSS per client; each round uses fresh scripts.
    """
    warm = await run_clients(f"{name} warm-up", server, scripts[-1:], replace(how, think=0.0))
    if warm.failures:
        raise RuntimeError(f"{name}: the warm-up conversation failed: {warm.failures[0]}")
    rounds = (len(scripts) - 1) // n
    return [
        await run_clients(name, server, scripts[r * n : (r + 1) * n], how) for r in range(rounds)
    ]


# --- the two servers ----------------------------------------------------------------


def scripts_for(serials: list[str]) -> list[list[str]]:
    return [frames_for(serial, f"BT{i:04d}") for i, serial in enumerate(serials)]


async def techassist_phase(n: int, serials: list[str], tmp: Path, think: float) -> list[Phase]:
    """Rounds of n clients through ``techassist serve``; one technician per serial."""
    data_dir = tmp / f"techassist-{n}"
    data_dir.mkdir()
    import_orders(dataset(serials), env=bench_env(data_dir), cwd=data_dir, timeout=120)
    argv = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    how = Conversation(check_techassist, server_closes=True, think=think)
    # N clients from one address: the connection caps are set for the run.
    env = bench_env(data_dir) | {
        "TECHASSIST_MAX_CONNECTIONS": str(n + 64),
        "TECHASSIST_MAX_CONNECTIONS_PER_IP": str(n + 64),
    }
    async with running(argv, env, data_dir / "server.log") as server:
        return await run_rounds("techassist", server, scripts_for(serials), n, how)


async def echo_phase(n: int, serials: list[str], tmp: Path, think: float) -> list[Phase]:
    """The same rounds, the same frames, against the bare echo."""
    data_dir = tmp / f"echo-{n}"
    data_dir.mkdir()
    argv = [sys.executable, "-m", "bench.echo_app", "--host", "127.0.0.1", "--port", "0"]
    how = Conversation(check_echo, server_closes=False, think=think)
    async with running(argv, bench_env(data_dir), data_dir / "server.log") as server:
        return await run_rounds("echo", server, scripts_for(serials), n, how)


# --- report -------------------------------------------------------------------------


@dataclass
class Figures:
    """One server's rounds, summed up: the median rate, pooled latencies, the first round's RSS."""

    rounds: list[Phase]

    @property
    def rate(self) -> float:
        return statistics.median(p.rate for p in self.rounds)

    @property
    def rates(self) -> str:
        return " ".join(f"{p.rate:.0f}" for p in self.rounds)

    @property
    def turns(self) -> list[float]:
        return [t for p in self.rounds for t in p.turns]

    @property
    def identify(self) -> list[float]:
        return [t for p in self.rounds for t in p.identify]

    @property
    def failures(self) -> list[str]:
        return [f for p in self.rounds for f in p.failures]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1e3


def report(n: int, ours: Figures, echo: Figures, think: float) -> None:
    first_o, first_e = ours.rounds[0], echo.rounds[0]
    ratio = ours.rate / echo.rate if echo.rate else float("nan")
    o99 = _ms(ours.turns, 0.99)
    rss_o, rss_e = first_o.rss_per_client, first_e.rss_per_client
    p99_target = f"target <= {TARGET_P99_MS:.0f} ms at 1000 clients"
    if n >= 1000:
        p99_target += f": {_met(o99 <= TARGET_P99_MS)}"
    turns = len(SCRIPT)
    pace = f", pausing {think:g} s on average before each" if think else ", no pause between turns"
    print(
        f"\n== {n} concurrent clients x {len(ours.rounds)} rounds: identify, then {turns} turns "
        f"each{pace} =="
    )
    print(f"{'':34}{'techassist':>13}{'echo':>13}")
    print(
        f"{'turns/s | frames/s, median':34}{ours.rate:13.0f}{echo.rate:13.0f}"
        f"   rounds: {ours.rates} | {echo.rates}"
    )
    ratio_note = (
        "(paced: rates are the offered load)"
        if think
        else f"target >= {TARGET_RATIO}: {_met(ratio >= TARGET_RATIO)}"
    )
    print(f"{'ratio techassist / echo':34}{ratio:13.2f}{'':13}   {ratio_note}")
    print(f"{'latency p50, ms':34}{_ms(ours.turns, 0.5):13.1f}{_ms(echo.turns, 0.5):13.1f}")
    print(f"{'latency p99, ms':34}{o99:13.1f}{_ms(echo.turns, 0.99):13.1f}   {p99_target}")
    if not think:
        print(
            f"{'  N / rate (Little: closed loop)':34}{n / ours.rate * 1e3:13.1f}"
            f"{n / echo.rate * 1e3:13.1f}"
        )
    print(
        f"{'identify turn p50 / p99, ms':34}"
        f"{_ms(ours.identify, 0.5):7.0f} /{_ms(ours.identify, 0.99):4.0f}"
        f"{_ms(echo.identify, 0.5):8.0f} /{_ms(echo.identify, 0.99):4.0f}"
        "   (all clients connect at once)"
    )
    print(f"{'ramp until all identified, s':34}{first_o.ramp:13.2f}{first_e.ramp:13.2f}")
    print(
        f"{'RSS per idle connection, KiB':34}{rss_o:13.1f}{rss_e:13.1f}   "
        f"target <= {TARGET_RSS_KIB:.0f} KiB: {_met(rss_o <= TARGET_RSS_KIB)}"
    )
    print(
        f"{'RSS before / idle, MiB':34}"
        f"{first_o.rss_before / 1024:6.1f} /{first_o.rss_idle / 1024:5.1f}"
        f"{first_e.rss_before / 1024:7.1f} /{first_e.rss_idle / 1024:5.1f}   (first round)"
    )
    ours_bytes = [b for p in ours.rounds for b in p.reply_bytes]
    echo_bytes = [b for p in echo.rounds for b in p.reply_bytes]
    print(
        f"{'reply frame, mean bytes':34}{statistics.fmean(ours_bytes or [0]):13.0f}"
        f"{statistics.fmean(echo_bytes or [0]):13.0f}"
    )
    for name, figures in (("techassist", ours), ("echo", echo)):
        rounds = figures.rounds
        finished = sum(p.finished for p in rounds)
        wall = sum(p.elapsed for p in rounds)
        server_cpu = sum(p.server_cpu for p in rounds)
        client_cpu = sum(p.client_cpu for p in rounds)
        print(
            f"{name}: {finished}/{n * len(rounds)} clients finished; released for {wall:.2f} s, "
            f"CPU: server {server_cpu:.2f} s ({server_cpu / wall:.0%}), "
            f"clients {client_cpu:.2f} s ({client_cpu / wall:.0%})"
        )
        for problem, count in Counter(figures.failures).most_common(5):
            print(f"  FAILED x{count}: {problem}")


async def main(counts: list[int], rounds: int, think: float) -> int:
    limit = raise_fd_limit()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"open-file limit {limit}; clients: this one process, asyncio, websockets "
        f"{version('websockets')}, compression off; servers and clients share the machine"
    )
    failed = 0
    with tempfile.TemporaryDirectory(prefix="techassist-bench-ws-") as tmp:
        for n in counts:
            serials = good_serials(rounds * n + 1)  # the last one is the warm-up's
            echo = await echo_phase(n, serials, Path(tmp), think)
            ours = await techassist_phase(n, serials, Path(tmp), think)
            report(n, Figures(ours), Figures(echo), think)
            failed += len(Figures(ours).failures) + len(Figures(echo).failures)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[200, 1000],
        help="numbers of concurrent clients, one run each (default: 200 1000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of fresh clients per N; rates are the median (default: 3)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="mean pause before each frame after the first (default: 0, "
        "back to back like a scripted legacy client)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 clients, 1 round")
    args = parser.parse_args()
    counts, rounds = ([20], 1) if args.quick else (args.clients, args.rounds)
    sys.exit(asyncio.run(main(counts, max(1, rounds), max(0.0, args.think))))
