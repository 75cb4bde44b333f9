"""The terminal client for the legacy websocket protocol (``client.py``, ``techassist client``).

It is strictly turn-based, like the legacy client: send a frame, read the one
frame that answers it, print it, and prompt when the server asks for input.
It imports nothing of TechAssist's server side, only the websockets library.
A token (``--token`` or ``TECHASSIST_TOKEN``) is sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from bot.screen import details, screen

DEFAULT_URL = "ws://127.0.0.1:8000/start_task"
QUIT = frozenset({"quit", "exit", "q"})
DETAILS = "details"
BYE = "Bye. Your progress is kept on the server."
NEEDS_TOKEN = "This server needs a token: --token or TECHASSIST_TOKEN."
BAD_TOKEN = (
    "The server refused the token (unknown, expired or revoked): ask for a new one "
    "(techassist tokens issue)."
)
BAD_ORIGIN = "The server refused this connection (HTTP 403): {reason}"


def refusal(status: int, sent_token: bool, body: bytes = b"") -> str:
    """One line saying why the server refused the handshake, and what to do."""
    if status == 401:
        return BAD_TOKEN if sent_token else NEEDS_TOKEN
    reason = body.decode("utf-8", "replace").strip().splitlines()[:1]
    if status == 403:
        return BAD_ORIGIN.format(reason=reason[0] if reason else "not allowed")
    return f"The server refused the connection (HTTP {status})."


def format_frame(frame: dict[str, Any]) -> str:
    """A server frame as terminal text: its message, then its choices, as ``techassist chat``."""
    choices = frame.get("choices")
    shown = [str(c) for c in choices] if isinstance(choices, list) else []
    return screen(str(frame.get("message", "")), shown)


def format_details(frame: dict[str, Any] | None) -> str:
    """The structured data of a frame, readably, for the ``details`` command."""
    lines = details(frame.get("data")) if frame else []
    return "\n".join(lines) if lines else "There are no details for this message."


def interact(
    url: str,
    cuid: str | None = None,
    *,
    token: str | None = None,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """Hold one conversation with the server at ``url``; returns an exit status.

    ``quit``, ``exit`` or ``q`` leaves at any prompt; the end of input does too.
    ``details`` shows the data of the last frame without asking the server.
    """
    write(
        "TechAssist client. Type 'help' at any point, 'details' for the data behind "
        "the last message, 'quit' to leave."
    )
    if not cuid:
        cuid = _ask_cuid(read)
        if cuid is None:
            write("Bye.")
            return 0
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        ws = connect(
            url, compression=None, max_size=2**20, open_timeout=10, additional_headers=headers
        )
    except InvalidStatus as exc:
        write(refusal(exc.response.status_code, bool(token), bytes(exc.response.body or b"")))
        return 1
    except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as exc:
        write(f"Cannot connect to {url}: {exc}")
        return 1
    with ws:
        try:
            return _converse(ws, cuid, read, write)
        except ConnectionClosed as exc:
            write(f"The connection was lost ({exc}). Run the client again to continue.")
            return 1


def _ask_cuid(read: Callable[[str], str]) -> str | None:
    """The CUID typed at the prompt, or None when the technician leaves instead."""
    while True:
        try:
            line = read("Your CUID: ").strip()
        except EOFError:
            return None
        if line.lower() in QUIT:
            return None
        if line:
            return line


def _converse(
    ws: ClientConnection, cuid: str, read: Callable[[str], str], write: Callable[[str], None]
) -> int:
    ws.send(json.dumps({"type": "cuid", "data": cuid}))
    quitting = False
    for raw in ws:
        frame = _frame(raw)
        write(format_frame(frame))
        if frame.get("type") != "input":
            continue
        if quitting:  # asked again after 'quit': leave all the same
            write(BYE)
            return 0
        while True:
            try:
                line = read("> ")
            except EOFError:
                line = "quit"
            if line.strip().lower() != DETAILS:
                break
            write(format_details(frame))
        quitting = line.strip().lower() in QUIT
        ws.send(json.dumps({"type": "message", "data": line}))
    return 0


def _frame(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    if isinstance(frame, dict):
        return frame
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return {"type": "display", "message": text}


def run_client(url: str = DEFAULT_URL, cuid: str | None = None, token: str | None = None) -> int:
    """Run the client in this terminal; Ctrl-C leaves at once, cleanly."""
    try:
        return interact(url, cuid, token=token)
    except KeyboardInterrupt:
        print(f"\n{BYE}")
        return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="TechAssist terminal client")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"server URL (default: {DEFAULT_URL})")
    parser.add_argument("--cuid", help="identify as this technician straight away")
    parser.add_argument(
        "--token", help="the technician's token, for a server that needs one (TECHASSIST_TOKEN)"
    )
    args = parser.parse_args(argv)
    return run_client(args.url, args.cuid, args.token or _token_setting())


def _token_setting() -> str | None:
    """``TECHASSIST_TOKEN`` through the settings, when the settings' libraries are installed."""
    try:
        from bot.settings import client_token
    except ImportError:  # client.py run where only the websockets library is installed
        return os.environ.get("TECHASSIST_TOKEN") or None
    return client_token()


if __name__ == "__main__":
    sys.exit(main())
