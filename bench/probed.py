"""``techassist`` with its garbage-collector pauses recorded, for ``bench.security``.

``python -m bench.probed serve ...`` runs the real CLI after adding a ``gc.callbacks``
hook that times every collection; at exit it writes them, as JSON lines
``{"at": wall-clock start, "ms": duration, "generation": g}``, to the file named by
``BENCH_GC_LOG``. The server's code is untouched: this only observes it.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from typing import Any

from bot.cli import main

pauses: list[tuple[float, float, int]] = []
_started: list[float] = [0.0, 0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0], _started[1] = time.time(), time.perf_counter()
    else:
        pauses.append((_started[0], (time.perf_counter() - _started[1]) * 1e3, info["generation"]))


def _dump() -> None:
    path = os.environ.get("BENCH_GC_LOG")
    if path:
        with open(path, "w") as out:
            for at, ms, generation in pauses:
                out.write(json.dumps({"at": at, "ms": ms, "generation": generation}) + "\n")


if __name__ == "__main__":
    gc.callbacks.append(_timed)
    atexit.register(_dump)
    sys.exit(main())
