"""Limits that live in the server layer, before a request reaches the app.

- ``guarded_http``: uvicorn's h11 protocol with a handshake timeout (a connection
  that has not sent a whole request head in time gets 408 and is closed; uvicorn
  itself waits forever for a first request) and a cap on the connections held at
  once (one over the cap gets 503 once its request head is read).
- ``ConnectionsPerAddress``: an ASGI middleware that answers 503 to a websocket
  handshake from a client address that already holds its share of connections.
  The address is the one uvicorn puts in the scope: the peer's, or the
  ``X-Forwarded-For`` of a trusted proxy (``TECHASSIST_FORWARDED_ALLOW_IPS``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("techassist.limits")

RETRY_AFTER = 5
"""Seconds a refused client is told to wait (``Retry-After``)."""
FULL = "The server holds as many connections as it may; try again later.\n"
TOO_MANY_FROM_YOU = "Too many connections from your address; close one or try again later.\n"
TOO_SLOW = "The request did not arrive in time.\n"


def _response(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(data)}\r\n"
        f"retry-after: {RETRY_AFTER}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + data


class Refusals:
    """Counts refusals of one kind and logs them at most once a minute, never per connection."""

    def __init__(self, what: str, setting: str) -> None:
        self.what, self.setting = what, setting
        self.count = 0
        self.logged_at = float("-inf")

    def add(self, limit: int | float) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= 60.0:
            log.warning(
                "%s: %d in the last minute (%s=%g)", self.what, self.count, self.setting, limit
            )
            self.count, self.logged_at = 0, now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a handshake timeout and a cap on connections.

    ``guarded_http`` makes a subclass with the two limits set.
    """

    max_connections: int = 0
    handshake_timeout: float = 0.0
    full = Refusals("connections refused over the cap", "TECHASSIST_MAX_CONNECTIONS")
    slow = Refusals("connections closed before a whole request", "TECHASSIST_HANDSHAKE_TIMEOUT")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.upgraded = False
        self.over_cap = len(self.connections) > self.max_connections
        if self.over_cap:
            # uvicorn answers an HTTP request 503 at once when over its concurrency limit.
            self.limit_concurrency = 0
        self.handshake_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.handshake_timeout, self._handshake_expired
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._disarm()
        self.upgraded = True
        if self.over_cap:
            self.full.add(self.max_connections)
            self._refuse(_response(503, "Service Unavailable", FULL))
            return
        super().handle_websocket_upgrade(event)

    def _disarm(self) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
            self.handshake_timer = None

    def _handshake_expired(self) -> None:
        self.handshake_timer = None
        if self.upgraded or self.cycle is not None or self.transport.is_closing():
            return  # a whole request arrived: uvicorn's keep-alive timeout takes over
        self.slow.add(self.handshake_timeout)
        self._refuse(_response(408, "Request Timeout", TOO_SLOW))

    def _refuse(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()


def guarded_http(max_connections: int, handshake_timeout: float) -> type[H11Protocol]:
    """uvicorn's ``http`` protocol class with these limits."""
    return type(
        "TechAssistH11Protocol",
        (GuardedH11Protocol,),
        {"max_connections": max_connections, "handshake_timeout": handshake_timeout},
    )


class ConnectionsPerAddress:
    """Answer 503 to a websocket handshake from an address that holds ``limit`` already."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.held: Counter[str] = Counter()
        self.refused = Refusals(
            "websocket connections refused over the per-address cap",
            "TECHASSIST_MAX_CONNECTIONS_PER_IP",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else ""
        if self.held[address] >= self.limit:
            self.refused.add(self.limit)
            await _deny(scope, send, 503, TOO_MANY_FROM_YOU)
            return
        self.held[address] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.held[address] -= 1
            if self.held[address] <= 0:
                del self.held[address]


async def _deny(scope: Scope, send: Send, status: int, body: str) -> None:
    """Refuse a websocket handshake with an HTTP response, or with 1013 where that is unknown."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1013, "reason": body.strip()})
        return
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"retry-after", str(RETRY_AFTER).encode()),
    ]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body.encode()})
