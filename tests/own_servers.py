"""A Redis server and a PostgreSQL cluster of the test's own, to stop and start again.

The shared servers (6379, 5432) are never restarted by a test: a test that needs
to see a backend go away and come back starts its own on a free port of
127.0.0.1, with its data in a temporary directory, and removes it all after,
failed or not. Redis keeps an append-only file fsynced on every write, so a
kill loses nothing; PostgreSQL is a fresh ``initdb`` cluster with trust
authentication (``initdb`` refuses root, so as root it runs as ``postgres``).

Without the server binaries the tests skip with the reason locally, and fail
under ``CI=true``, like the other Redis and PostgreSQL tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis

from tests.orchestrator_core.workorders.backends import unavailable

#: Seconds a server has to answer after it was started.
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(ready: Callable[[], bool], what: str) -> None:
    """Call ``ready()`` until it is true, or fail after ``READY_TIMEOUT`` seconds."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {READY_TIMEOUT:g} s")
        time.sleep(0.05)


class OwnRedis:
    """A ``redis-server`` on a free port with an append-only file, fsynced on every write."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again, on the same port and files) and wait until it answers."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_until(self._answers, f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        """Whether the server answers a PING (not while it still reads its append-only file)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited (is the port taken?)")
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """Stop the server at once (``SIGKILL``): only the append-only file survives."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def own_redis() -> Iterator[OwnRedis]:
    """A started ``OwnRedis``; killed and its files removed after. Skips without redis-server."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no redis-server on PATH to start a Redis of the test's own")
        raise AssertionError("unreachable")
    data_dir = Path(tempfile.mkdtemp(prefix="techassist-redis-"))
    server = OwnRedis(binary, data_dir)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


def postgres_bin() -> Path | None:
    """The directory of the newest installed PostgreSQL's server programs, if any."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class OwnPostgres:
    """A PostgreSQL cluster of its own in ``data_dir``, listening on 127.0.0.1 at a free port."""

    def __init__(self, bin_dir: Path, data_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.data_dir = data_dir
        self.port = free_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        """Run one of the server programs as the cluster's owner; RuntimeError with its output."""
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust")

    def start(self) -> None:
        """Start the cluster (again, on the same port) and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1"
        log = str(self.data_dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m mode``: ``fast`` ends the sessions cleanly, ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        """A new empty database on the cluster; its URL."""
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A started ``OwnPostgres``; stopped and its files removed after. Skips without PostgreSQL."""
    bin_dir = postgres_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        unavailable("no PostgreSQL server programs (initdb, pg_ctl) to start a cluster of our own")
        raise AssertionError("unreachable")
    # Under /tmp, not pytest's tmp_path: the cluster's owner must be able to reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="techassist-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    server = OwnPostgres(bin_dir, data_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(RuntimeError):  # already gone; the files go anyway
                server.stop("immediate")
        shutil.rmtree(data_dir, ignore_errors=True)
