"""The terminal client for the legacy websocket protocol (``client.py``, ``techassist client``).

It is strictly turn-based, like the legacy client: send a frame, read the one
frame that answers it, print it, and prompt when the server asks for input.
It imports nothing of TechAssist's server side, only the websockets library.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect

DEFAULT_URL = "ws://127.0.0.1:8000/start_task"


def format_frame(frame: dict[str, Any]) -> str:
    """A server frame as terminal text: its message, its data, then its choices."""
    lines = [str(frame.get("message", ""))]
    data = frame.get("data")
    if isinstance(data, dict) and data:
        lines += _data_lines(data, "  ")
    elif data not in (None, {}, []):
        lines.append(f"  {data}")
    choices = frame.get("choices")
    if choices:
        lines.append("  Choices: " + " | ".join(str(c) for c in choices))
    return "\n".join(lines)


def _data_lines(data: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for key, value in data.items():
        label = str(key).replace("_", " ")
        if isinstance(value, dict):
            lines.append(f"{indent}{label}:")
            lines += _data_lines(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines.append(f"{indent}{label}:")
            for item in value:
                lines.append(indent + "  - " + ", ".join(f"{k}: {v}" for k, v in item.items()))
        else:
            lines.append(f"{indent}{label}: {value}")
    return lines


def interact(
    url: str,
    cuid: str | None = None,
    *,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """Hold one conversation with the server at ``url``; returns an exit status."""
    if not cuid:
        cuid = read("Your CUID: ").strip()
    try:
        with connect(url, compression=None, max_size=2**20, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "cuid", "data": cuid}))
            for raw in ws:
                frame = json.loads(raw)
                write(format_frame(frame))
                if frame.get("type") == "input":
                    try:
                        line = read("> ")
                    except EOFError:
                        line = "quit"
                    ws.send(json.dumps({"type": "message", "data": line}))
    except ConnectionClosed as exc:
        write(f"The connection was lost ({exc}). Run the client again to continue.")
        return 1
    except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as exc:
        write(f"Cannot connect to {url}: {exc}")
        return 1
    return 0


def run_client(url: str = DEFAULT_URL, cuid: str | None = None) -> int:
    """Run the client in this terminal; Ctrl-C leaves cleanly."""
    try:
        return interact(url, cuid)
    except KeyboardInterrupt:
        print("\nBye. Your progress is kept on the server.")
        return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="TechAssist terminal client")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default: {DEFAULT_URL})")
    parser.add_argument("--cuid", help="identify as this technician straight away")
    args = parser.parse_args(argv)
    return run_client(args.url, args.cuid)


if __name__ == "__main__":
    sys.exit(main())
