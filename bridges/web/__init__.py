"""The web bridges: the technicians' browser chat (``chat.py``) and its static page.

Importing this package is cheap: names and paths only. ``chat.py`` holds the
routes and the ``/ws`` protocol (v2, see ``docs/protocol.md``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

#: The page's files (HTML, CSS, one JavaScript module), shipped inside the wheel.
STATIC = Path(__file__).resolve().parent / "static"
#: Where the chat's websocket listens.
WS_PATH = "/ws"
#: The page a sign-in link opens.
SIGNIN_PATH = "/signin"
#: The cookie that holds a signed-in technician's token.
COOKIE = "techassist_web"
#: The protocol version of ``/ws``.
PROTOCOL_VERSION = 2


def public_base(public_url: str | None, host: str, port: int) -> str:
    """Where technicians reach the server: the configured URL, else ``http://HOST:PORT``."""
    if public_url:
        return public_url.rstrip("/")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def signin_url(base: str, token: str) -> str:
    """The one-time sign-in link for a link token."""
    return f"{base.rstrip('/')}{SIGNIN_PATH}?t={quote(token, safe='')}"


__all__ = [
    "COOKIE",
    "PROTOCOL_VERSION",
    "SIGNIN_PATH",
    "STATIC",
    "WS_PATH",
    "public_base",
    "signin_url",
]
