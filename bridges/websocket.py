"""The websocket bridge: the legacy ``client.py`` protocol, frame for frame.

The protocol, fixed by clients already in the field:

- the client's first frame is ``{"type": "cuid", "data": "<CUID>"}``, later ones
  ``{"type": "message", "data": "<text>"}``; a frame that is not JSON counts as
  ``data``;
- the server answers every client frame with exactly one frame
  ``{"type": "input" | "display", "message": ...}``, plus ``data``,
  ``data_needed`` and ``choices`` where they apply; a turn's replies are folded
  into that one frame, because the legacy client answers after every frame;
- the last frame of a conversation is a ``display`` frame, then a normal close.

Before the handshake is accepted, the ``Door`` checks the browser Origin (403)
and, in token mode, the technician's token (401); the token then decides the
CUID the first frame may name.

This module only translates: frames to ``IncomingTurn``, ``Reply`` lists to
frames. It is the only one that knows starlette's websocket types.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bridges.guards import Clock, MessageRate, origin_of, too_deep
from orchestrator_core.errors import KeyTooLong, TechAssistError
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.owners import LocalOwners, Owners
from orchestrator_core.phases.commands import COMMANDS
from orchestrator_core.turns import (
    IncomingTurn,
    Reply,
    ReplyKind,
    SessionKey,
    TurnKind,
    encodable,
    readable,
)

log = logging.getLogger("techassist.websocket")

BRIDGE = "websocket"
PATH = "/start_task"
#: Frames larger than this are refused by the server (close code 1009).
MAX_FRAME = 64 * 1024

FORMAT_HELP = (
    'I could not read that frame. Send JSON like {"type": "message", "data": "your answer"}, '
    'starting with {"type": "cuid", "data": "YOUR CUID"}.'
)
TAKEN_OVER = "This session was opened from another connection, so this one is closing."
NEEDS_TOKEN = "This server needs a token: give it with --token or TECHASSIST_TOKEN."
BAD_TOKEN = "This token is not valid: it is unknown, expired or revoked."
BAD_ORIGIN = "Connections from this web page's origin are not allowed."
#: Close code of a policy refusal, when the server cannot answer the handshake with HTTP.
POLICY = 1008


def not_yours(bound: str) -> str:
    return (
        f"This connection's token is for {bound}, so it cannot act for another technician. "
        "Send your own CUID."
    )


@dataclass(frozen=True)
class Door:
    """Who may open a connection: browser origins, and a token check in token mode.

    ``verify`` maps a token to the CUID it belongs to (None: not valid); without
    it no token is needed. A client that sends no Origin (not a browser) and a
    page served by this server itself are always let in.
    """

    verify: Callable[[str], Awaitable[str | None]] | None = None
    origins: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls, verify: Callable[[str], Awaitable[str | None]] | None, origins: Iterable[str] = ()
    ) -> Door:
        allowed = {origin_of(o) for o in origins if o.strip()}
        return cls(verify, frozenset(o for o in allowed if o is not None))

    def allows_origin(self, websocket: WebSocket) -> bool:
        origin = websocket.headers.get("origin")
        if origin is None:
            return True
        given = origin_of(origin)
        if given is None:  # "null" (a sandboxed page, a file) or garbage
            return False
        host = websocket.headers.get("host", "")
        own = origin_of(f"{'https' if websocket.url.scheme == 'wss' else 'http'}://{host}")
        return given == own or given in self.origins


def presented_token(websocket: WebSocket) -> str | None:
    """The token of a handshake: ``Authorization: Bearer``, else ``?token=``."""
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.query_params.get("token") or None


SLOW_DOWN = (
    "You are sending messages faster than I can take them (more than {limit} a minute), "
    "so I did not read that one. Wait a few seconds, then send it again."
)
TOO_MANY_FAILURES = (
    "Too many failed attempts to identify from your address. "
    "Wait {seconds} seconds, then send your CUID again."
)
IDLE_CLOSE = (
    "No message for {minutes}, so this connection is closing. "
    "Your session is kept: reconnect to carry on where you stopped."
)


def session_key(cuid: str) -> SessionKey:
    """The session key of a legacy websocket technician."""
    return SessionKey(BRIDGE, "", "", cuid)


@dataclass(frozen=True)
class ClientFrame:
    """A client frame that could be read: its type and its text."""

    type: str
    data: str


def parse_frame(raw: str) -> ClientFrame | None:
    """Read a client text frame; ``None`` when it cannot be taken as it is.

    That is JSON of the wrong shape, JSON nested deeper than ``guards.MAX_DEPTH``, or
    text that cannot be encoded (a lone surrogate, which a JSON escape such as
    ``"\\ud800"`` produces): the client is told the format and nothing changes.
    """
    if raw.lstrip()[:1] in ("{", "[") and too_deep(raw):
        return None
    try:
        frame = json.loads(raw)
    except ValueError:
        return ClientFrame("message", raw)  # plain text counts as data
    if isinstance(frame, str | int | float) and not isinstance(frame, bool):
        return ClientFrame("message", raw)  # a bare JSON scalar is still just text
    if not isinstance(frame, dict) or not isinstance(frame.get("data"), str):
        return None
    kind = frame.get("type")
    kind = kind if isinstance(kind, str) else "message"
    if not (encodable(frame["data"]) and encodable(kind)):
        return None
    return ClientFrame(kind, frame["data"])


# A JSON string; an unclosed one runs to the end, so that nothing backtracks.
def _notice(reply: Reply) -> str | None:
    """The kind of message nobody asked for a reply carries (``answer``, ``reminder``…), if any."""
    kind = (reply.data or {}).get("notice")
    return kind if isinstance(kind, str) else None


def render(replies: list[Reply]) -> dict[str, Any]:
    """Fold one turn's replies into the single frame the legacy client expects.

    The client cannot take a frame it did not ask for, so a dispatcher's answer
    (or a hand-back) arrives as replies the core put first in the next turn:
    they open the frame's ``message``. A reminder is never shown here: the
    technician who sends a frame is already back. The frame's ``data`` is the
    turn's own, never a notice's.
    """
    replies = [r for r in replies if _notice(r) != "reminder"]
    if not replies:
        return {"type": "input", "message": ""}
    ordered = [r for r in replies if _notice(r) is not None]
    ordered += [r for r in replies if _notice(r) is None]
    last = ordered[-1]
    frame: dict[str, Any] = {
        "type": "input" if last.kind is ReplyKind.PROMPT else "display",
        "message": "\n".join(r.text for r in ordered),
    }
    data = next(
        (r.data for r in reversed(replies) if r.data is not None and _notice(r) is None), None
    )
    if data is not None:
        frame["data"] = data
    if last.needs:
        frame["data_needed"] = last.needs
    if last.choices:
        frame["choices"] = list(last.choices)
    return frame


@dataclass(eq=False)
class Connection:
    """One client connection, and whether a turn of it is still in flight."""

    websocket: WebSocket
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    bound: str | None = None
    """The CUID the connection's token belongs to (token mode); only it may be named."""
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    """Names the connection as a CUID's owner, to every instance."""
    fence: int | None = None
    """Orders its claim of a CUID among all claims (a larger one is newer); None until recorded."""
    overtaken: int = 0
    """The largest fence announced by another connection while this one's claim was on its way."""

    def __post_init__(self) -> None:
        self.idle.set()


@dataclass
class Connections:
    """Which connection currently holds each CUID, so a second one takes it over.

    ``owners`` carries the claims to the other instances: a connection that
    claims a CUID on one instance closes the earlier one on another (``taken``).
    Earlier means a smaller fence: an announcement that arrives while this
    instance's own claim is still on its way is kept until that claim's fence
    is known, so of two connections opened at once exactly one stays open.
    """

    by_cuid: dict[str, Connection] = field(default_factory=dict)
    owners: Owners = field(default_factory=LocalOwners)

    async def settle(self, cuid: str, connection: Connection) -> None:
        """Wait until another connection of ``cuid`` has finished delivering its turn.

        A client that reconnects while its old connection's turn is still
        running must see that turn's replies, so its first turn waits for it.
        """
        previous = self.by_cuid.get(cuid)
        if previous is not None and previous is not connection:
            await previous.idle.wait()

    async def claim(self, cuid: str, connection: Connection) -> None:
        previous = self.by_cuid.get(cuid)
        self.by_cuid[cuid] = connection
        if previous is not None and previous is not connection:
            await _taken_over(previous)
        try:
            connection.fence = await self.owners.claim(cuid, connection.token)
        except TechAssistError as exc:
            log.error("cannot tell other instances a connection was opened: %s", exc)
            connection.fence = 0  # unknown to them: any claim they announce is newer
        if connection.overtaken > connection.fence and self.holds(cuid, connection):
            del self.by_cuid[cuid]  # claimed elsewhere after this claim, before it returned
            await _taken_over(connection)

    async def release(self, cuid: str | None, connection: Connection) -> None:
        if cuid is not None and self.by_cuid.get(cuid) is connection:
            del self.by_cuid[cuid]
            try:
                await self.owners.release(cuid, connection.token)
            except TechAssistError as exc:
                log.error("cannot release a connection's ownership: %s", exc)

    async def taken(self, cuid: str, owner: str, fence: int) -> None:
        """``owner`` claimed ``cuid`` with ``fence`` (on any instance): close an older one here."""
        connection = self.by_cuid.get(cuid)
        if connection is None or connection.token == owner:
            return
        if connection.fence is None:  # its own claim is on its way: ``claim`` decides
            connection.overtaken = max(connection.overtaken, fence)
        elif connection.fence < fence:
            del self.by_cuid[cuid]
            await _taken_over(connection)

    def holds(self, cuid: str, connection: Connection) -> bool:
        return self.by_cuid.get(cuid) is connection


class WebsocketBridge:
    """Serves legacy websocket clients on one orchestrator."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        door: Door | None = None,
        limits: WebsocketLimits | None = None,
        owners: Owners | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.connections = Connections(owners=owners or LocalOwners())
        #: Connections accepted and not yet closed (a metric reads it).
        self.open = 0
        self.door = door or Door()
        self.limits = limits or WebsocketLimits()
        per_minute = self.limits.identify_failures_per_minute
        self.failures = IdentifyFailures(per_minute) if per_minute is not None else None

    async def admit(self, websocket: WebSocket) -> tuple[bool, str | None]:
        """Check a handshake before accepting it: whether to go on, and the token's CUID.

        Nothing a refused client sent reaches the orchestrator. Neither the
        token nor the query string is ever logged.
        """
        client = websocket.client.host if websocket.client else "?"
        if not self.door.allows_origin(websocket):
            log.info("refused a websocket connection from %s: origin not allowed", client)
            await _deny(websocket, 403, BAD_ORIGIN)
            return False, None
        if self.door.verify is None:
            return True, None
        token = presented_token(websocket)
        if token is None:
            log.info("refused a websocket connection from %s: no token", client)
            await _deny(websocket, 401, NEEDS_TOKEN)
            return False, None
        try:
            cuid = await self.door.verify(token)
        except TechAssistError as exc:
            log.error("cannot check a websocket token: %s", exc)
            await _deny(websocket, 503, "Tokens cannot be checked right now; try again soon.")
            return False, None
        if cuid is None:
            log.info("refused a websocket connection from %s: token not valid", client)
            await _deny(websocket, 401, BAD_TOKEN)
            return False, None
        return True, cuid

    async def serve(self, websocket: WebSocket) -> None:
        """Run one client connection until it closes; bad frames never end it."""
        admitted, bound = await self.admit(websocket)
        if not admitted:
            return
        await websocket.accept()
        connection = Connection(websocket, bound=bound)
        cuid: str | None = None
        per_minute = self.limits.messages_per_minute
        rate = MessageRate(per_minute) if per_minute is not None else None
        self.open += 1
        try:
            while True:
                try:
                    async with asyncio.timeout(self.limits.idle_timeout):
                        message = await websocket.receive()
                except TimeoutError:
                    await _idle_close(websocket, self.limits.idle_timeout or 0.0)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                if rate is not None and not rate.take():
                    if rate.abused:
                        log.info("closing a websocket client that ignored the message rate")
                        await _close(websocket, 1008, "message rate limit")
                        return
                    await _send(
                        websocket, {"type": "input", "message": SLOW_DOWN.format(limit=per_minute)}
                    )
                    continue
                text = message.get("text")
                frame = parse_frame(text) if text is not None else None
                if frame is None:  # binary, or JSON of the wrong shape
                    await _send(websocket, {"type": "input", "message": FORMAT_HELP})
                    continue
                if cuid is not None and not self.connections.holds(cuid, connection):
                    return  # taken over while this frame was on its way
                connection.idle.clear()
                try:
                    cuid, closed = await self._turn(connection, cuid, frame)
                finally:
                    connection.idle.set()
                if closed:
                    await _close(websocket)
                    return
        except WebSocketDisconnect:
            return
        finally:
            self.open -= 1
            await self.connections.release(cuid, connection)

    async def _turn(
        self, connection: Connection, cuid: str | None, frame: ClientFrame
    ) -> tuple[str | None, bool]:
        """Handle one readable frame; return the connection's CUID and whether to close."""
        websocket = connection.websocket
        if cuid is None or (frame.type == "cuid" and frame.data.strip().upper() == cuid):
            # Until a CUID is accepted, every frame is an attempt to identify.
            candidate = frame.data.strip().upper()
            if cuid is None and frame.type == "message" and COMMANDS.match(candidate) == "quit":
                # Leaving before anyone is identified: there is no session to keep.
                await _send(websocket, {"type": "display", "message": "Goodbye."})
                return None, True
            if not candidate:
                await _send(
                    websocket,
                    {"type": "input", "message": "Please send your CUID.", "data_needed": "cuid"},
                )
                return cuid, False
            if connection.bound is not None and candidate != connection.bound:
                # The token decides who this is; another technician's CUID goes no further.
                refusal = {"type": "input", "message": not_yours(connection.bound)}
                await _send(websocket, {**refusal, "data_needed": "cuid"})
                return cuid, False
            address = websocket.client.host if websocket.client else ""
            if cuid is None and await self._over_failures(websocket, address):
                return None, False
            try:
                key = session_key(candidate)
            except KeyTooLong:
                # Too long to be anyone's CUID: answered as any CUID that identifies no one.
                if self.failures is not None:
                    self.failures.failed(address)
                await _send(
                    websocket, render(await self.orchestrator.refuse_key(BRIDGE, candidate))
                )
                return None, False
            await self.connections.settle(candidate, connection)
            turn = IncomingTurn(key, kind=TurnKind.START, cuid=candidate)
            replies = await self.orchestrator.handle(turn)
            identified = not (replies and replies[-1].needs == "cuid")
            if identified:
                await self.connections.claim(candidate, connection)
            elif self.failures is not None:
                self.failures.failed(address)
            await self._deliver(websocket, key, replies)
            return (candidate if identified else None), _closes(replies)
        if frame.type == "cuid":
            await _send(
                websocket,
                {
                    "type": "input",
                    "message": f"You are connected as {cuid}. Reconnect to change technician.",
                },
            )
            return cuid, False
        key = session_key(cuid)
        replies = await self.orchestrator.handle(IncomingTurn(key, text=frame.data))
        await self._deliver(websocket, key, replies)
        return cuid, _closes(replies)

    async def _over_failures(self, websocket: WebSocket, address: str) -> bool:
        """Refuse, unchecked and after a delay, an attempt from an address over its limit."""
        wait = self.failures.wait(address) if self.failures is not None else 0.0
        if wait <= 0:
            return False
        await asyncio.sleep(self.limits.refusal_delay)
        message = TOO_MANY_FAILURES.format(seconds=max(1, round(wait)))
        await _send(websocket, {"type": "input", "message": message, "data_needed": "cuid"})
        return True

    async def _deliver(self, websocket: WebSocket, key: SessionKey, replies: list[Reply]) -> None:
        if not await _send(websocket, render(replies)):
            # The turn is saved; keep what it said for the technician's return.
            await self.orchestrator.undelivered(key, replies)


def _closes(replies: list[Reply]) -> bool:
    return bool(replies) and replies[-1].kind is ReplyKind.DISPLAY


async def _send(websocket: WebSocket, frame: dict[str, Any]) -> bool:
    """Send one frame; False when the client is already gone."""
    if websocket.application_state is not WebSocketState.CONNECTED:
        return False
    text = json.dumps(frame, ensure_ascii=False, default=str)
    if not encodable(text):  # a lone surrogate would fail in the middle of the send
        text = readable(text)
    try:
        await websocket.send_text(text)
        return True
    except (WebSocketDisconnect, RuntimeError, OSError) as exc:
        log.info("could not send to a websocket client that left: %s", exc)
        return False


async def _taken_over(connection: Connection) -> None:
    """Tell a connection another one took its CUID, then close it."""
    await _send(connection.websocket, {"type": "display", "message": TAKEN_OVER})
    await _close(connection.websocket)


async def _deny(websocket: WebSocket, status: int, text: str) -> None:
    """Refuse a handshake with an HTTP status; a server without that extension gets 1008."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    try:
        await websocket.send_denial_response(PlainTextResponse(text, status, headers=headers))
    except RuntimeError:  # no denial-response extension: accept, then close with a reason
        await websocket.accept()
        await websocket.close(code=POLICY, reason=text[:120])


async def _close(websocket: WebSocket, code: int = 1000, reason: str | None = None) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError):  # already closing
            await websocket.close(code=code, reason=reason)


async def _idle_close(websocket: WebSocket, seconds: float) -> None:
    """Say why, then close normally: the client sent nothing for ``seconds``."""
    minutes = round(seconds / 60)
    if seconds < 60:
        span = f"{seconds:g} second{'s' * (seconds != 1)}"
    else:
        span = f"{minutes} minute{'s' * (minutes != 1)}"
    await _send(websocket, {"type": "display", "message": IDLE_CLOSE.format(minutes=span)})
    await _close(websocket)


# --- limits: small counters the bridge asks before it hands a frame to the core ------
#
# - MessageRate: a connection's frames per minute, as a token bucket; a frame over the
#   rate is answered "slow down" and not read, and a client that keeps sending
#   regardless (REFUSED_IN_A_ROW frames) is closed with 1008.
# - IdentifyFailures: failed identifications per client address in the last minute,
#   across its connections; once an address reaches the limit, its attempts are
#   refused unchecked, after a delay, until its oldest failure is a minute old.


WINDOW = 60.0
"""Seconds over which failed identifications are counted."""
MAX_ADDRESSES = 10_000
"""Addresses whose recent failures are remembered; the least recently failing are dropped."""
"""Frames over the rate, one after another, after which a connection is closed (1008)."""


@dataclass(frozen=True)
class WebsocketLimits:
    """What the bridge allows; ``None`` is no limit."""

    idle_timeout: float | None = None
    """Seconds a client may send nothing before its connection is closed (1000)."""
    messages_per_minute: int | None = None
    """Frames one connection may send per minute."""
    identify_failures_per_minute: int | None = None
    """Failed identifications from one client address per minute."""
    refusal_delay: float = 1.0
    """Seconds an address over its identification limit waits for each refusal."""


class IdentifyFailures:
    """Failed identifications per client address over the last minute, shared by connections."""

    def __init__(
        self,
        per_minute: int,
        clock: Clock = time.monotonic,
        window: float = WINDOW,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds until an attempt from ``address`` is checked again; 0: check it now."""
        times = self._failures.get(address)
        if times is None:
            return 0.0
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return 0.0
        if len(times) < self.per_minute:
            return 0.0
        return times[0] + self.window - now

    def failed(self, address: str) -> None:
        """Count one failed identification from ``address``."""
        times = self._failures.pop(address, None)
        if times is None:
            times = deque(maxlen=self.per_minute)
        times.append(self.clock())
        self._failures[address] = times  # most recent last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
