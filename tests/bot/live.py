"""A ``techassist`` command run as a live process: read its output as it comes, signal it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def environment(data_dir: Path | None = None, **env: str) -> dict[str, str]:
    """The test process's environment without TechAssist settings or proxies, plus ``env``."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TECHASSIST_") and not k.lower().endswith("_proxy")
    }
    environ.pop("SLACK_BOT_TOKEN", None)
    environ.pop("SLACK_APP_TOKEN", None)
    if data_dir is not None:
        environ["TECHASSIST_DATA_DIR"] = str(data_dir)
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(env)
    return environ


def techassist(
    data_dir: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``techassist ARGS`` to the end in ``data_dir``, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment(data_dir, **env),
        timeout=60,
        cwd=data_dir,
    )


class Live:
    """A process with stdin kept open, its stdout collected by a thread as it arrives."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        self._out: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read(1):
            self._out.append(chunk)

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.stdout:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"never saw {text!r} in:\n{self.stdout}")
            time.sleep(0.02)

    def type(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def interrupt(self) -> None:
        """Ctrl-C."""
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit, at most ``timeout`` s (then kill it); the exit code and stderr."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(timeout=5)
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
        assert self.process.stderr is not None
        with self.process.stderr:
            return code, self.process.stderr.read()
