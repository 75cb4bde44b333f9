"""Benchmark: what an attacker on 127.0.0.1 gets out of ``techassist serve``.

Run ``python -m bench.security [--quick]``. Every figure comes from the real
server, started in a subprocess on a fresh data directory (the demo data seeded)
through ``bench.probed``, which only adds a ``gc.callbacks`` hook that records each
collection's pause. All traffic stays on 127.0.0.1 and every phase is bounded.
Each attack runs against the default limits and, side by side, against a server
whose limit is set out of reach (what the server did before it had limits).

- **Identification attempts that get through**: a scanner sends CUID guesses for
  a few seconds, on one connection and on several at once; an attempt gets
  through when the server checks it (its reply is not the "too many failed
  attempts" refusal nor the "slow down" one).
- **RSS around 2,000 idle connections**, twice: before, the peak while they are
  held, and after they are closed; once with the caps set for the run (2,000
  fit), once with the default caps (most are refused).
- **The longest event-loop stall**: a separate process asks ``/healthz`` over one
  keep-alive connection every 5 ms while an attack runs; the stall is its slowest
  answer. The attacks: a plan pattern with nested quantifiers and an answer that
  makes a backtracking engine explode, and a flood of frames on 20 connections
  that do not wait for answers. Garbage-collector pauses in the same window are
  shown apart (the longest, and their sum).
- **Bytes written to disk per unidentified connection**: the size of every file
  in the data directory (WAL included) before and after N connections that each
  send three guesses and leave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.core import dataset, good_serials
from bench.processes import import_orders
from bench.ws import ROOT, Server, bench_env, raise_fd_limit, running

TIMEOUT = 60.0
REFUSED = ("Too many failed attempts", "faster than I can take them")
OUT_OF_REACH = str(10**9)
HOSTILE_PLAN = {
    "id": "installation",
    "title": "A hostile pattern",
    "order_types": ["installation"],
    "parameters": {"note": {"prompt": "Type the letter a a few times.", "pattern": "^(a+)+$"}},
    "steps": [{"id": "note", "task": "Take a note", "parameters": ["note"], "done": "Noted."}],
}
HOSTILE_ANSWER = "a" * 28 + "!"

DEFAULTS: dict[str, str] = {}
NO_IDENTIFY_LIMIT = {
    "TECHASSIST_IDENTIFY_FAILURES_PER_MINUTE": OUT_OF_REACH,
    "TECHASSIST_MESSAGES_PER_MINUTE": OUT_OF_REACH,
}


# --- the server, its gc pauses and a /healthz probe -----------------------------------


@dataclass
class Run:
    """A server of this bench: where it listens and where its gc log goes."""

    server: Server
    data_dir: Path
    gc_log: Path

    @property
    def port(self) -> int:
        return int(self.server.url.rsplit(":", 1)[1].split("/")[0])


@asynccontextmanager
async def serving(
    tmp: Path, name: str, env: dict[str, str], technicians: int = 0
) -> AsyncIterator[Run]:
    """The server on a fresh data directory: the demo data, or ``technicians`` of
    ``bench.core``'s synthetic ones (CUIDs BT0000...)."""
    data_dir, logs = tmp / name / "data", tmp / name
    data_dir.mkdir(parents=True)
    environment = bench_env(data_dir) | {"TECHASSIST_SEED_DEMO": "true"} | env
    if technicians:
        data = dataset(good_serials(technicians))
        import_orders(data, env=environment, cwd=logs, timeout=TIMEOUT)
    environment["BENCH_GC_LOG"] = str(logs / "gc.jsonl")
    argv = [sys.executable, "-m", "bench.probed", "serve", "--host", "127.0.0.1", "--port", "0"]
    async with running(argv, environment, logs / "server.log") as server:
        yield Run(server, data_dir, logs / "gc.jsonl")


def gc_pauses(run: Run, start: float, end: float) -> list[float]:
    """The server's gc pauses (ms) that began between ``start`` and ``end`` (wall clock)."""
    if not run.gc_log.exists():
        return []
    pauses = [json.loads(line) for line in run.gc_log.read_text().splitlines()]
    return [p["ms"] for p in pauses if start <= p["at"] <= end]


def probe(port: int) -> None:
    """Ask /healthz every 5 ms until stdin closes; print each answer's seconds as JSON."""
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    took: list[list[float]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        while not stop.is_set():
            t0 = time.time()
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise RuntimeError("the server closed the probe's connection")
                answer += chunk
            took.append([t0, time.time() - t0])
            time.sleep(0.005)
    print(json.dumps(took))


@dataclass
class Stall:
    probe_max_ms: float
    probe_p50_ms: float
    answers: int
    gc_max_ms: float
    gc_total_ms: float
    gc_count: int
    seconds: float
    start: float  # the window, wall clock, to find the server's gc pauses in
    end: float
    note: str = ""


@asynccontextmanager
async def probing(run: Run, into: list[Stall]) -> AsyncIterator[list[str]]:
    """Probe /healthz while the block runs; append what it saw to ``into``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.security",
        "--probe",
        str(run.port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    await asyncio.sleep(0.5)  # the probe is connected and answering
    notes: list[str] = []
    start = time.time()
    try:
        yield notes
    finally:
        end = time.time()
        await asyncio.sleep(0.2)
        out, _ = await asyncio.wait_for(proc.communicate(b""), TIMEOUT)
        took = [t for at, t in json.loads(out) if at >= start - 0.1]
        into.append(
            Stall(
                probe_max_ms=max(took, default=0.0) * 1e3,
                probe_p50_ms=statistics.median(took or [0.0]) * 1e3,
                answers=len(took),
                gc_max_ms=0.0,
                gc_total_ms=0.0,
                gc_count=0,
                seconds=end - start,
                start=start,
                end=end,
                note="; ".join(notes),
            )
        )


def resolve_gc(run: Run, stalls: list[Stall]) -> None:
    for stall in stalls:
        pauses = gc_pauses(run, stall.start, stall.end)
        stall.gc_max_ms = max(pauses, default=0.0)
        stall.gc_total_ms = sum(pauses)
        stall.gc_count = len(pauses)


# --- clients --------------------------------------------------------------------------


async def opened(port: int) -> ClientConnection:
    url = f"ws://127.0.0.1:{port}/start_task"
    return await connect(url, compression=None, open_timeout=TIMEOUT, proxy=None, max_size=2**20)


async def ask(ws: ClientConnection, kind: str, data: str) -> str:
    await ws.send(json.dumps({"type": kind, "data": data}))
    return str(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["message"])


@dataclass
class Scan:
    sent: int = 0
    checked: int = 0
    seconds: float = 0.0
    closed: int = 0

    @property
    def through_per_s(self) -> float:
        return self.checked / self.seconds if self.seconds else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def scan(port: int, connections: int, seconds: float) -> Scan:
    """Guess CUIDs on ``connections`` connections for ``seconds``."""
    result = Scan()
    deadline = time.perf_counter() + seconds

    async def scanner(k: int) -> None:
        number = 0
        while time.perf_counter() < deadline:
            try:
                async with await opened(port) as ws:
                    while time.perf_counter() < deadline:
                        number += 1
                        reply = await ask(ws, "cuid", f"Q{chr(65 + k % 26)}{number % 10000:04d}")
                        result.sent += 1
                        if not any(r in reply for r in REFUSED):
                            result.checked += 1
            except ConnectionClosed:
                result.closed += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(scanner(k) for k in range(connections)))
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class Flood:
    accepted: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    rss: list[int] = field(default_factory=list)  # KiB: before, peak, after; then again


async def idle_flood(run: Run, count: int, times: int) -> Flood:
    """Open ``count`` idle connections at once, hold them, close them; ``times`` times."""
    flood = Flood()
    async with await opened(run.port) as ws:  # warm-up: the first connection's one-time costs
        await ask(ws, "cuid", "AB1234")
    await asyncio.sleep(0.5)
    for _ in range(times):
        flood.rss.append(run.server.rss_kib())
        peak = flood.rss[-1]
        results = await asyncio.gather(
            *(opened(run.port) for _ in range(count)), return_exceptions=True
        )
        await asyncio.sleep(0.5)
        peak = max(peak, run.server.rss_kib())
        flood.rss.append(peak)
        accepted = [r for r in results if isinstance(r, ClientConnection)]
        flood.accepted = len(accepted)
        flood.refused = {}
        for r in results:
            if isinstance(r, InvalidStatus):
                status = r.response.status_code
                flood.refused[status] = flood.refused.get(status, 0) + 1
            elif isinstance(r, BaseException):
                flood.refused[0] = flood.refused.get(0, 0) + 1
        await asyncio.gather(*(ws.close() for ws in accepted))
        await asyncio.sleep(1.0)
        flood.rss.append(run.server.rss_kib())
    return flood


async def frame_flood(port: int, connections: int, frames: int) -> tuple[int, int, int]:
    """``connections`` identified clients each send ``frames`` frames without waiting;
    returns the answers read, those that were refusals, and the connections closed early."""
    answered = refused = closed = 0

    async def flooder(k: int) -> None:
        nonlocal answered, refused, closed
        async with await opened(port) as ws:
            await ask(ws, "cuid", f"BT{k:04d}")

            async def read() -> None:
                nonlocal answered, refused
                for _ in range(frames):
                    message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["message"]
                    answered += 1
                    refused += any(r in message for r in REFUSED)

            reader = asyncio.create_task(read())
            try:
                for _ in range(frames):
                    await ws.send(json.dumps({"type": "message", "data": "status"}))
                await reader
            except ConnectionClosed:
                closed += 1
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await reader

    await asyncio.gather(*(flooder(k) for k in range(connections)))
    return answered, refused, closed


async def hostile_regex(port: int) -> str:
    """Start an order whose plan asks for a value matched by ``^(a+)+$``; send the answer."""
    async with await opened(port) as ws:
        await ask(ws, "cuid", "AB1234")
        await ask(ws, "message", "yes")
        t0 = time.perf_counter()
        reply = await ask(ws, "message", HOSTILE_ANSWER)
        return f"answered in {time.perf_counter() - t0:.2f} s: {reply[:60]!r}"


def disk_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in data_dir.iterdir() if f.is_file())


async def unidentified(port: int, data_dir: Path, count: int) -> tuple[int, int]:
    """``count`` connections each send three guesses and leave; data bytes before and after."""
    before = disk_bytes(data_dir)
    for start in range(0, count, 50):

        async def guesser(i: int) -> None:
            async with await opened(port) as ws:
                for guess in (f"QZ{i % 10000:04d}", f"not-a-cuid-{i}", "x" * 1000 + str(i)):
                    await ask(ws, "cuid", guess)

        await asyncio.gather(*(guesser(i) for i in range(start, min(count, start + 50))))
    await asyncio.sleep(1.5)  # the WAL checkpointer has run
    return before, disk_bytes(data_dir)


# --- the report -----------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


async def main(quick: bool) -> int:
    limit = raise_fd_limit()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    print(f"open-file limit {limit}; client and server share the machine, all on 127.0.0.1")
    seconds = 2.0 if quick else 5.0
    many = 5 if quick else 20
    idle = 300 if quick else 2000
    unknown = 50 if quick else 200
    with tempfile.TemporaryDirectory(prefix="techassist-bench-security-") as name:
        tmp = Path(name)

        # 1. identification attempts that get through
        scans: dict[str, list[Scan]] = {}
        for label, env in (("defaults", DEFAULTS), ("no limit", NO_IDENTIFY_LIMIT)):
            for width in (1, many):  # a fresh server each: the address starts with no failures
                async with serving(tmp, f"scan-{label}-{width}".replace(" ", "-"), env) as run:
                    scans.setdefault(label, []).append(await scan(run.port, width, seconds))
        print(f"\n== CUID guesses for {seconds:g} s from one address, a fresh server each ==")
        print(f"{'':44}{'defaults':>14}{'no limit':>14}")
        for i, what in enumerate(("1 connection", f"{many} connections")):
            d, n = scans["defaults"][i], scans["no limit"][i]
            print(f"{what + ': guesses sent/s':44}{d.sent_per_s:14.1f}{n.sent_per_s:14.1f}")
            print(f"{what + ': guesses checked, in all':44}{d.checked:14d}{n.checked:14d}")
            print(
                f"{what + ': checked (got through)/s':44}"
                f"{d.through_per_s:14.2f}{n.through_per_s:14.1f}"
            )

        # 2. RSS around idle connections
        caps = {
            "TECHASSIST_MAX_CONNECTIONS": str(idle + 16),
            "TECHASSIST_MAX_CONNECTIONS_PER_IP": str(idle + 16),
        }
        floods: dict[str, Flood] = {}
        for label, env in (("caps for the run", caps), ("default caps", DEFAULTS)):
            async with serving(tmp, f"idle-{label}".replace(" ", "-"), env) as run:
                floods[label] = await idle_flood(run, idle, 2)
        print(f"\n== {idle} idle connections at once, held, closed; twice ==")
        print(f"{'':44}{'caps for the run':>18}{'default caps':>14}")
        for label, key in (("accepted", "accepted"), ("refused (status: count)", "refused")):
            a, b = (getattr(floods[k], key) for k in ("caps for the run", "default caps"))
            print(f"{label:44}{a!s:>18}{b!s:>14}")
        steps = ("before", "peak", "after", "2nd: before", "2nd: peak", "2nd: after")
        for i, step in enumerate(steps):
            a, b = (floods[k].rss[i] for k in ("caps for the run", "default caps"))
            print(f"{'RSS ' + step + ', MiB':44}{mib(a):>18}{mib(b):>14}")
        total_caps = {"caps for the run": idle + 16, "default caps": 1024}
        for label, f in floods.items():
            grown, again = f.rss[1] - f.rss[0], f.rss[4] - f.rss[1]
            bound = total_caps[label] * 40
            print(
                f"{label}: peak - before {grown / 1024:.1f} MiB for {f.accepted} held, "
                f"bound {bound / 1024:.1f} MiB (total cap {total_caps[label]} x 40 KiB): "
                f"{'met' if grown <= bound else 'NOT met'}; 2nd flood's peak - 1st's "
                f"{again / 1024:+.1f} MiB, bound < 5 MiB: "
                f"{'met' if again < 5 * 1024 else 'NOT met'}"
            )

        # 3. event-loop stalls
        plans = tmp / "hostile-plans"
        plans.mkdir()
        (plans / "installation.json").write_text(json.dumps(HOSTILE_PLAN))
        stalls: dict[str, Stall] = {}
        async with serving(tmp, "regex", {"TECHASSIST_PLANS_DIR": str(plans)}) as run:
            found: list[Stall] = []
            async with probing(run, found):
                await asyncio.sleep(1.0)
            async with probing(run, found) as notes:
                notes.append(await hostile_regex(run.port))
        resolve_gc(run, found)
        stalls["idle (no attack)"], stalls[f"plan pattern ^(a+)+$, {HOSTILE_ANSWER[:3]}…!"] = found
        flood_frames = 100 if quick else 500
        for label, env in (("defaults", DEFAULTS), ("no message limit", NO_IDENTIFY_LIMIT)):
            name = f"flood-{label}".replace(" ", "-")
            async with serving(tmp, name, env, technicians=many) as run:
                found = []
                async with probing(run, found) as notes:
                    answered, refused, closed = await frame_flood(run.port, many, flood_frames)
                    notes.append(f"{answered} answered, {refused} refused, {closed} closed early")
            resolve_gc(run, found)
            stalls[f"frame flood {many}x{flood_frames}, {label}"] = found[0]
        print("\n== longest event-loop stall: slowest /healthz answer, probed every 5 ms ==")
        print(f"{'':44}{'max ms':>9}{'p50 ms':>9}{'gc max':>9}{'gc sum':>9}{'gc n':>6}")
        for label, s in stalls.items():
            print(
                f"{label:44}{s.probe_max_ms:9.1f}{s.probe_p50_ms:9.2f}{s.gc_max_ms:9.1f}"
                f"{s.gc_total_ms:9.1f}{s.gc_count:6d}   {s.seconds:.1f} s"
                + (f"; {s.note}" if s.note else "")
            )

        # 4. bytes written per unidentified connection
        written: dict[str, tuple[int, int]] = {}
        for label, env in (("defaults", DEFAULTS), ("no limit", NO_IDENTIFY_LIMIT)):
            async with serving(tmp, f"disk-{label}".replace(" ", "-"), env) as run:
                await asyncio.sleep(1.5)  # start-up writes have settled
                written[label] = await unidentified(run.port, run.data_dir, unknown)
        print(f"\n== {unknown} unidentified connections, 3 guesses each (target: 0 bytes) ==")
        print(f"{'':44}{'defaults':>14}{'no limit':>14}")
        on, off = written["defaults"], written["no limit"]
        print(f"{'data files before, bytes':44}{on[0]:14d}{off[0]:14d}")
        print(f"{'data files after, bytes':44}{on[1]:14d}{off[1]:14d}")
        print(
            f"{'written per connection, bytes':44}{(on[1] - on[0]) / unknown:14.0f}"
            f"{(off[1] - off[0]) / unknown:14.0f}"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer and shorter")
    parser.add_argument("--probe", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        sys.exit(0)
    sys.exit(asyncio.run(main(args.quick)))
