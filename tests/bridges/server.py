"""Start the real ``techassist serve`` in a subprocess on a free port, as an operator would."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT = 30.0
LISTENING = "TechAssist listening on "


@dataclass
class Server:
    """A running server process and the address it announced."""

    process: subprocess.Popen[str]
    url: str
    output: list[str]
    reader: threading.Thread

    @property
    def http(self) -> str:
        return self.url.replace("ws://", "http://").removesuffix("/start_task")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, nothing graceful."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


SERVE = ("serve", "--host", "127.0.0.1", "--port", "0")


def start(
    data_dir: Path, command: Sequence[str] = SERVE, announce: str = LISTENING, **env: str
) -> Server:
    """Start ``techassist <command>`` (a server on 127.0.0.1, port 0) in ``data_dir``.

    Returns once it prints ``announce`` and where it listens: ``techassist simulate``
    starts the same way, with its own command and line.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        environment.pop(name, None)
    environment.update({"TECHASSIST_DATA_DIR": str(data_dir), "TECHASSIST_LOG_LEVEL": "INFO"})
    environment.update(env)  # a test's own values win, the log level too
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=data_dir,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    while True:
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            Server(process, "", output, reader).kill()
            raise RuntimeError("server did not start:\n" + "".join(output)) from None
        if line is None:
            Server(process, "", output, reader).stop()
            raise RuntimeError("server exited:\n" + "".join(output))
        if line.startswith(announce):
            return Server(process, line.removeprefix(announce).strip(), output, reader)


@contextmanager
def running(
    data_dir: Path, command: Sequence[str] = SERVE, announce: str = LISTENING, **env: str
) -> Iterator[Server]:
    server = start(data_dir, command, announce, **env)
    try:
        yield server
    finally:
        server.stop()
