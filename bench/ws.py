"""Benchmark: concurrent legacy websocket clients against ``techassist serve``.

Run ``python -m bench.ws [--clients N ...] [--quick]``. For each N it starts
``techassist serve`` in a subprocess on a fresh temporary data directory that
holds a synthetic dataset (one technician, one installation order and one good
ONT per client), and runs N concurrent clients in this process through a whole
installation, exactly as the legacy client does: send the CUID, then answer
every server frame with the next line of the script, until the final
``display`` frame and the server's close.

In the same run, a bare websocket echo (``bench.echo_app``, on the same
FastAPI + uvicorn settings) is driven by the same client code with the same N
and the same frames. The figures are printed side by side: turns/s against the
echo's frames/s, turn latency, and the server's RSS per connected, idle client.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from bench.core import SCRIPT, dataset, good_serials

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
        """User plus system CPU time the process used, from ``/proc/<pid>/stat``."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_env(data_dir: Path) -> dict[str, str]:
    """The environment of the subprocesses: ours, minus any TECHASSIST_ setting, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    env.update(
        TECHASSIST_DATA_DIR=str(data_dir),
        TECHASSIST_SEED_DEMO="false",
        TECHASSIST_LOG_LEVEL="WARNING",
    )
    return env


async def _announced_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    for _ in range(1000):  # a server prints a few lines at most before it listens
        line = await proc.stdout.readline()
        if not line:
            break
        match = LISTENING.search(line)
        if match:
            return match.group(1).decode()
    raise RuntimeError("the server exited or never said where it listens")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):  # keep the pipe from filling; ends at EOF
        pass


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@asynccontextmanager
async def running(argv: list[str], env: dict[str, str], log: Path) -> AsyncIterator[Server]:
    """Start a server subprocess, wait for its "listening on" line, and always stop it."""
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env, cwd=ROOT
        )
    drain: asyncio.Task[None] | None = None
    try:
        try:
            url = await asyncio.wait_for(_announced_url(proc), START_TIMEOUT)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(argv[2:])}: {exc}\n{tail}") from exc
        assert proc.stdout is not None
        drain = asyncio.create_task(_drain(proc.stdout))
        yield Server(proc, url)
    finally:
        await _stop(proc)
        if drain is not None:
            drain.cancel()


def import_dataset(serials: list[str], data_dir: Path) -> None:
    """Import the synthetic dataset with ``techassist orders import``."""
    path = data_dir / "bench-dataset.json"
    path.write_text(json.dumps(dataset(serials)))
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "orders", "import", str(path)],
        env=bench_env(data_dir), cwd=ROOT, check=True, timeout=120,
        stdout=subprocess.DEVNULL,
    )


# --- clients ------------------------------------------------------------------------


@dataclass
class Phase:
    """What N clients measured against one server."""

    name: str
    clients: int
    identify: list[float] = field(default_factory=list)  # the first turn, during the ramp
    turns: list[float] = field(default_factory=list)  # every later turn, all clients released
    reply_bytes: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    finished: int = 0
    ramp: float = 0.0  # seconds from the first connect to all clients identified
    elapsed: float = 0.0  # seconds from the release to the last client's last reply
    rss_before: int = 0
    rss_idle: int = 0
    server_cpu: float = 0.0  # over the released part
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.turns) / self.elapsed if self.elapsed else 0.0

    @property
    def rss_per_client(self) -> float:
        return (self.rss_idle - self.rss_before) / self.clients


Check = Callable[[str, str, bool], str | None]


def check_techassist(sent: str, raw: str, last: bool) -> str | None:
    """Why a TechAssist reply is wrong, or None: an input frame, and the summary at the end."""
    frame = json.loads(raw)
    if not last:
        return None if frame.get("type") == "input" else f"early {frame.get('type')}: {raw[:200]}"
    if frame.get("type") != "display" or DONE not in frame.get("message", ""):
        return f"the installation did not finish: {raw[:300]}"
    return None


def check_echo(sent: str, raw: str, last: bool) -> str | None:
    """Why an echo reply is wrong, or None."""
    return None if raw == sent else f"echoed {raw[:100]!r} for {sent[:100]!r}"


class Ramp:
    """Counts clients that are identified and idle, or out; opens the gate for all at once."""

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


async def client(
    url: str, frames: list[str], check: Check, server_closes: bool, ramp: Ramp, phase: Phase,
    done_at: list[float],
) -> None:
    """One legacy client: identify, wait at the gate, then answer every frame with the next."""
    settled = False
    try:
        async with connect(url, compression=None, max_size=2**20, open_timeout=PHASE_TIMEOUT) as ws:
            raw = await _turn(ws, frames[0], phase.identify, phase)
            problem = check(frames[0], raw, len(frames) == 1)
            if problem:
                raise AssertionError(problem)
            ramp.settle()
            settled = True
            await ramp.go.wait()
            for i, frame in enumerate(frames[1:], 2):
                raw = await _turn(ws, frame, phase.turns, phase)
                problem = check(frame, raw, i == len(frames))
                if problem:
                    raise AssertionError(problem)
            done_at.append(time.perf_counter())
            if server_closes:
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
    name: str, server: Server, scripts: list[list[str]], check: Check, server_closes: bool
) -> Phase:
    """Run one client per script at once; measure the ramp, the RSS when idle, and the turns."""
    phase = Phase(name, len(scripts))
    ramp = Ramp(len(scripts))
    done_at: list[float] = []
    phase.rss_before = server.rss_kib()
    deadline = time.perf_counter() + PHASE_TIMEOUT
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(client(server.url, s, check, server_closes, ramp, phase, done_at))
        for s in scripts
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
        for task in pending:
            phase.failures.append("timed out")
            task.cancel()
    finally:
        ramp.go.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return phase


async def warm_up(server: Server, frames: list[str], check: Check, server_closes: bool) -> None:
    """One whole conversation first, so one-time costs (imports, caches) are not per client."""
    phase = await run_clients("warm-up", server, [frames], check, server_closes)
    if phase.failures:
        raise RuntimeError(f"the warm-up conversation failed: {phase.failures[0]}")


# --- the two servers ----------------------------------------------------------------


async def techassist_phase(n: int, serials: list[str], tmp: Path) -> Phase:
    data_dir = tmp / f"techassist-{n}"
    data_dir.mkdir()
    import_dataset(serials, data_dir)  # serials[n] is the warm-up technician's
    scripts = [frames_for(serial, f"BT{i:04d}") for i, serial in enumerate(serials)]
    argv = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    async with running(argv, bench_env(data_dir), data_dir / "server.log") as server:
        await warm_up(server, scripts[n], check_techassist, True)
        return await run_clients("techassist", server, scripts[:n], check_techassist, True)


async def echo_phase(n: int, serials: list[str], tmp: Path) -> Phase:
    data_dir = tmp / f"echo-{n}"
    data_dir.mkdir()
    scripts = [frames_for(serial, f"BT{i:04d}") for i, serial in enumerate(serials)]
    argv = [sys.executable, "-m", "bench.echo_app", "--host", "127.0.0.1", "--port", "0"]
    async with running(argv, bench_env(data_dir), data_dir / "server.log") as server:
        await warm_up(server, scripts[n], check_echo, False)
        return await run_clients("echo", server, scripts[:n], check_echo, False)


# --- report -------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(n: int, ours: Phase, echo: Phase) -> None:
    ratio = ours.rate / echo.rate if echo.rate else float("nan")
    o50, o99 = pct(ours.turns, 0.50) * 1e3, pct(ours.turns, 0.99) * 1e3
    e50, e99 = pct(echo.turns, 0.50) * 1e3, pct(echo.turns, 0.99) * 1e3
    rss_o, rss_e = ours.rss_per_client, echo.rss_per_client
    p99_target = f"target <= {TARGET_P99_MS:.0f} ms at 1000 clients"
    if n >= 1000:
        p99_target += f": {_met(o99 <= TARGET_P99_MS)}"
    print(f"\n== {n} concurrent clients, {len(ours.turns) // max(1, ours.finished or n)} "
          f"turns each after identifying ==")
    print(f"{'':32}{'techassist':>12}{'echo':>12}")
    print(f"{'turns/s | frames/s':32}{ours.rate:12.0f}{echo.rate:12.0f}")
    print(f"{'ratio techassist / echo':32}{ratio:12.2f}{'':12}   "
          f"target >= {TARGET_RATIO}: {_met(ratio >= TARGET_RATIO)}")
    print(f"{'latency p50, ms':32}{o50:12.1f}{e50:12.1f}")
    print(f"{'latency p99, ms':32}{o99:12.1f}{e99:12.1f}   {p99_target}")
    print(f"{'identify turn p50 / p99, ms':32}"
          f"{pct(ours.identify, .5) * 1e3:6.0f} /{pct(ours.identify, .99) * 1e3:4.0f}"
          f"{pct(echo.identify, .5) * 1e3:6.0f} /{pct(echo.identify, .99) * 1e3:4.0f}"
          "   (connect storm: all clients at once)")
    print(f"{'ramp: all identified, s':32}{ours.ramp:12.2f}{echo.ramp:12.2f}")
    print(f"{'RSS per idle connection, KiB':32}{rss_o:12.1f}{rss_e:12.1f}   "
          f"target <= {TARGET_RSS_KIB:.0f} KiB: {_met(rss_o <= TARGET_RSS_KIB)}")
    print(f"{'RSS before / idle, MiB':32}"
          f"{ours.rss_before / 1024:6.1f} /{ours.rss_idle / 1024:5.1f}"
          f"{echo.rss_before / 1024:6.1f} /{echo.rss_idle / 1024:5.1f}")
    print(f"{'reply frame, mean bytes':32}{statistics.fmean(ours.reply_bytes or [0]):12.0f}"
          f"{statistics.fmean(echo.reply_bytes or [0]):12.0f}")
    for phase in (ours, echo):
        print(f"{phase.name}: {phase.finished}/{n} clients finished; over {phase.elapsed:.2f} s "
              f"the server used {phase.server_cpu:.2f} s CPU, the clients {phase.client_cpu:.2f} s")
        for problem, count in Counter(phase.failures).most_common(5):
            print(f"  FAILED x{count}: {problem}")


async def main(counts: list[int]) -> int:
    limit = raise_fd_limit()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}")
    print(f"open-file limit {limit}; clients: one asyncio process, websockets client, "
          f"compression off; server and clients share the machine")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="techassist-bench-ws-") as tmp:
        for n in counts:
            serials = good_serials(n + 1)  # one more for the warm-up conversation
            echo = await echo_phase(n, serials, Path(tmp))
            ours = await techassist_phase(n, serials, Path(tmp))
            report(n, ours, echo)
            failed += len(ours.failures) + len(echo.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[200, 1000],
                        help="numbers of concurrent clients, one run each (default: 200 1000)")
    parser.add_argument("--quick", action="store_true", help="a small smoke run: 20 clients")
    args = parser.parse_args()
    sys.exit(asyncio.run(main([20] if args.quick else args.clients)))
