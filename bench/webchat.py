"""Benchmark: the web chat (``/ws``, protocol v2) against the legacy ``/start_task``, by CPU.

Run ``python -m bench.webchat [--clients N] [--rounds R] [--quick]``. One
``techassist serve`` runs in a subprocess on a fresh temporary data directory
holding a synthetic dataset (one technician, one installation order and one
good ONT per conversation). Each round runs N concurrent conversations through
a whole installation on one endpoint, then N on the other; the order of the
two alternates from round to round, so neither always runs on a warmer
process. Every conversation is six turns on both: the greeting (the legacy
CUID frame; the web page's ``hello``) and the five lines of the script.

Web clients sign in as a browser does first (a one-time link posted to
``/api/signin`` for the cookie), outside the measured part; each turn is a
``message`` frame with an id, answered by one ``reply`` frame (frames of any
other type are counted and reported).

The figure is the server's CPU per turn: user plus system time from
``/proc/<pid>/stat``, read before the round's clients connect and after the
last one is done, so it is free of the ±20 % swings of turns per second when
clients and server share the cores. The ratio of the web chat's turns per
CPU-second to the legacy endpoint's is reported per round, with the median;
the target is at least 0.7. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from bench.core import SCRIPT, dataset, good_serials
from bench.processes import import_orders
from bench.ws import DONE, Server, bench_env, frames_for, raise_fd_limit, running
from orchestrator_core.credentials import Credentials
from orchestrator_core.sqlite_workorders import SqliteWorkOrders

TARGET_RATIO = 0.7
TIMEOUT = 120.0
TURNS = 1 + len(SCRIPT)


@dataclass
class Round:
    """One endpoint's round: conversations, turns, the server's CPU over them."""

    endpoint: str
    clients: int
    turns: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    extra_frames: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def per_cpu_second(self) -> float:
        return self.turns / self.cpu if self.cpu else 0.0


async def legacy(server: Server, cuid: str, serial: str, into: Round) -> None:
    async with connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        frames = frames_for(serial, cuid)
        for i, frame in enumerate(frames, 1):
            await ws.send(frame)
            raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
            into.turns += 1
            if i == len(frames) and DONE not in json.loads(raw).get("message", ""):
                raise AssertionError(f"the installation did not finish: {str(raw)[:200]}")


async def web(server: Server, cookie: str, serial: str, into: Round) -> None:
    url = server.url.removesuffix("/start_task") + "/ws"
    headers = {"Cookie": f"techassist_web={cookie}"}
    async with connect(
        url, additional_headers=headers, compression=None, open_timeout=TIMEOUT, proxy=None
    ) as ws:

        async def reply() -> dict[str, object]:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if frame["type"] == "reply":
                    into.turns += 1
                    return dict(frame)
                if frame["type"] != "welcome":
                    into.extra_frames += 1

        await ws.send(json.dumps({"type": "hello", "v": 2, "resume": None}))
        await reply()
        last: dict[str, object] = {}
        for n, line in enumerate(SCRIPT):
            text = line % serial if "%s" in line else line
            await ws.send(json.dumps({"type": "message", "id": f"c-{n}", "text": text}))
            last = await reply()
        said = json.dumps(last)
        if "Orders completed this session" not in said:
            raise AssertionError(f"the installation did not finish: {said[:200]}")


async def sign_in(base: str, links: list[str]) -> list[str]:
    """Use each link as a browser does; the cookies."""
    async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=TIMEOUT) as client:
        cookies = []
        for link in links:
            response = await client.post("/api/signin", data={"t": link})
            if response.status_code != 303:
                raise RuntimeError(f"sign-in failed: {response.status_code} {response.text[:200]}")
            cookies.append(response.cookies["techassist_web"])
            client.cookies.clear()
        return cookies


async def run_round(server: Server, endpoint: str, people: list[tuple[str, str, str]]) -> Round:
    """N conversations at once on one endpoint; the server's CPU from first connect to last."""
    result = Round(endpoint, len(people))
    cpu0, t0 = server.cpu_seconds(), time.perf_counter()

    async def one(cuid: str, serial: str, cookie: str) -> None:
        try:
            if endpoint == "legacy":
                await legacy(server, cuid, serial, result)
            else:
                await web(server, cookie, serial, result)
        except Exception as exc:  # counted and reported, never retried
            result.failures.append(f"{type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(one(*p) for p in people))
    result.wall = time.perf_counter() - t0
    result.cpu = server.cpu_seconds() - cpu0
    return result


async def links_for(data_dir: Path, cuids: list[str]) -> list[str]:
    """One sign-in link per technician, issued as ``techassist tokens link`` does."""
    db = SqliteWorkOrders(data_dir / "workorders.db")
    try:
        credentials = Credentials(db)
        return [(await credentials.issue_link(cuid)).secret for cuid in cuids]
    finally:
        db.close()


async def main(clients: int, rounds: int) -> int:
    raise_fd_limit()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"{clients} concurrent conversations per round, {rounds} rounds per endpoint, "
        f"{TURNS} turns each; server and clients share the machine"
    )
    with tempfile.TemporaryDirectory(prefix="techassist-bench-webchat-") as tmp:
        data_dir = Path(tmp)
        total = 2 * rounds * clients + 2
        serials = good_serials(total)
        import_orders(dataset(serials), env=bench_env(data_dir), cwd=data_dir, timeout=120)
        cuids = [f"BT{i:04d}" for i in range(total)]
        links = await links_for(data_dir, cuids)
        argv = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
        env = bench_env(data_dir) | {
            "TECHASSIST_MAX_CONNECTIONS": str(clients + 64),
            "TECHASSIST_MAX_CONNECTIONS_PER_IP": str(clients + 64),
            "TECHASSIST_MESSAGES_PER_MINUTE": "100000",
        }
        async with running(argv, env, data_dir / "server.log") as server:
            base = server.url.replace("ws://", "http://").removesuffix("/start_task")
            cookies = await sign_in(base, links)
            people = list(zip(cuids, serials, cookies, strict=True))
            # One warm-up conversation on each endpoint: lazy imports and caches.
            for endpoint, person in (("legacy", people[-2]), ("web", people[-1])):
                warm = await run_round(server, endpoint, [person])
                if warm.failures:
                    raise RuntimeError(f"{endpoint} warm-up failed: {warm.failures[0]}")
            results: list[tuple[Round, Round]] = []
            for r in range(rounds):
                batch = people[2 * r * clients : 2 * (r + 1) * clients]
                first, second = ("legacy", "web") if r % 2 == 0 else ("web", "legacy")
                a = await run_round(server, first, batch[:clients])
                b = await run_round(server, second, batch[clients:])
                pair = (a, b) if first == "legacy" else (b, a)
                results.append(pair)
    return report(results)


def report(results: list[tuple[Round, Round]]) -> int:
    print(
        f"{'round':>5} {'legacy turns/CPU-s':>19} {'web turns/CPU-s':>16} {'ratio':>6}"
        f" {'legacy CPU ms/turn':>19} {'web CPU ms/turn':>16}"
    )
    ratios = []
    failures = 0
    extra = 0
    for i, (old, new) in enumerate(results, 1):
        ratio = new.per_cpu_second / old.per_cpu_second if old.per_cpu_second else 0.0
        ratios.append(ratio)
        failures += len(old.failures) + len(new.failures)
        extra += new.extra_frames
        print(
            f"{i:>5} {old.per_cpu_second:>19.0f} {new.per_cpu_second:>16.0f} {ratio:>6.2f}"
            f" {1000 * old.cpu / max(old.turns, 1):>19.2f}"
            f" {1000 * new.cpu / max(new.turns, 1):>16.2f}"
        )
        for problem in (old.failures + new.failures)[:3]:
            print(f"  FAILED: {problem}")
    old_turns = sum(o.turns for o, _ in results)
    new_turns = sum(n.turns for _, n in results)
    old_cpu = sum(o.cpu for o, _ in results)
    new_cpu = sum(n.cpu for _, n in results)
    pooled = (new_turns / new_cpu) / (old_turns / old_cpu) if old_cpu and new_cpu else 0.0
    median = statistics.median(ratios)
    met = "met" if median >= TARGET_RATIO else "NOT met"
    print(
        f"web chat / legacy, turns per server CPU-second: median {median:.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}), pooled {pooled:.2f}; "
        f"target >= {TARGET_RATIO}: {met}"
    )
    print(
        f"turns: legacy {old_turns}, web {new_turns}; web frames besides replies "
        f"(typing, progress): {extra}; failed conversations: {failures}"
    )
    return 1 if failures or median < TARGET_RATIO else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--clients", type=int, default=50, help="concurrent conversations per round (default 50)"
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="rounds per endpoint, at least 5 (default 6)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 clients, 2 rounds")
    args = parser.parse_args()
    clients, rounds = (5, 2) if args.quick else (max(1, args.clients), max(1, args.rounds))
    sys.exit(asyncio.run(main(clients, rounds)))
