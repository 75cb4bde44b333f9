#!/usr/bin/env python3
"""TechAssist's terminal client: ``python client.py [--url URL] [--cuid CUID] [--token TOKEN]``.

It needs the ``websockets`` library. Run from a checkout where ``make run`` has
built ``.venv``, it uses that environment's Python when the current one lacks it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

try:
    import websockets  # noqa: F401
except ImportError:
    venv_python = HERE / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != (HERE / ".venv").resolve():
        os.execv(str(venv_python), [str(venv_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit(
        "client.py needs the websockets library: run 'make run' once, or 'pip install websockets'."
    )

sys.path.insert(0, str(HERE))
from bot.client import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
