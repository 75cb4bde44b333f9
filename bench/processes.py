"""The benchmarks' child processes: started, awaited until they say they are ready, stopped."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Process = asyncio.subprocess.Process

LINES_BEFORE_READY = 1000
"""A process prints a few lines at most before it is ready; more means it never will be."""


@asynccontextmanager
async def child(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    ready: Callable[[bytes], T | None],
    start_timeout: float,
    stop_timeout: float,
) -> AsyncIterator[tuple[Process, T]]:
    """Run ``argv`` with its stderr in ``log``; yield it with what ``ready`` made of the first
    stdout line it accepted. Always stop it: SIGTERM, then SIGKILL after ``stop_timeout``.

    Fails with ``RuntimeError``, and the tail of the log, when the process exits or stays
    silent for ``start_timeout`` seconds.
    """
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env, cwd=cwd
        )
    assert proc.stdout is not None
    drain: asyncio.Task[None] | None = None
    try:
        try:
            value = await asyncio.wait_for(_first(proc.stdout, ready), start_timeout)
        except (RuntimeError, TimeoutError) as exc:
            tail = log.read_text(errors="replace")[-2000:]
            why = str(exc) or f"not ready within {start_timeout:g} s"
            raise RuntimeError(f"{' '.join(argv)}: {why}\n{tail}") from exc
        drain = asyncio.create_task(_drain(proc.stdout))
        yield proc, value
    finally:
        await stop(proc, stop_timeout)
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)


async def stop(proc: Process, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after ``timeout`` seconds."""
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def _first(stream: asyncio.StreamReader, ready: Callable[[bytes], T | None]) -> T:
    for _ in range(LINES_BEFORE_READY):
        line = await stream.readline()
        if not line:
            break
        value = ready(line)
        if value is not None:
            return value
    raise RuntimeError("it exited, or never said it was ready")


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(1 << 16):  # keep the pipe from filling; ends at EOF
        pass


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_orders(data: dict[str, Any], *, env: dict[str, str], cwd: Path, timeout: float) -> None:
    """Load ``data`` with ``techassist orders import``, as an operator would; the file it
    reads is written to ``cwd``."""
    path = cwd / "bench-dataset.json"
    path.write_text(json.dumps(data))
    argv = [sys.executable, "-m", "bot.cli", "orders", "import", str(path)]
    result = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"techassist orders import failed:\n{result.stderr[-2000:]}")
