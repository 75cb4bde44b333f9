"""``techassist`` with its garbage-collector pauses recorded, for ``bench.security``.

``python -m bench.probed serve ...`` runs the real CLI after adding a ``gc.callbacks``
hook that times every collection and appends it, as a JSON line
``{"at": wall-clock start, "ms": duration, "generation": g}``, to the file named by
``BENCH_GC_LOG`` (written as it goes: uvicorn ends the process by re-raising the
signal that stopped it, so nothing at exit would run). The server's code is
untouched: this only observes it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import IO, Any

from bot.cli import main

_started: list[float] = [0.0, 0.0]


def recorder(out: IO[str]) -> Any:
    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            _started[0], _started[1] = time.time(), time.perf_counter()
            return
        ms = (time.perf_counter() - _started[1]) * 1e3
        out.write(json.dumps({"at": _started[0], "ms": ms, "generation": info["generation"]}))
        out.write("\n")

    return timed


if __name__ == "__main__":
    path = os.environ.get("BENCH_GC_LOG")
    if path:
        gc.callbacks.append(recorder(open(path, "a", buffering=1)))  # noqa: SIM115
    sys.exit(main())
