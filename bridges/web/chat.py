"""The technicians' web chat: the page, the one-time sign-in link and ``/ws`` (protocol v2).

- ``GET /`` serves the page to a signed-in technician (a valid token in the
  ``techassist_web`` cookie); anyone else gets a page that says how to sign in.
- ``GET /signin?t=LINK`` shows a button that posts the link token to
  ``POST /api/signin``; a valid, unused, unexpired one becomes a technician token
  in an HttpOnly, SameSite=Strict cookie. A GET never uses the link, so a chat
  app's link preview cannot burn it.
- ``/ws`` speaks protocol v2 (``docs/protocol.md``): one JSON frame per turn,
  the client's message id acknowledged inside the reply frame, typing and
  progress frames only when a turn is slow, notices pushed as they come.

A technician has one web conversation: ``SessionKey("web", "", "", CUID)``.
The client's message ids are the turns' message ids, so a message sent again
after a reconnect is answered from the stored replies and never runs twice.
This module only translates; the orchestrator decides everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from bridges.guards import MessageRate, origin_of, too_deep
from bridges.web import COOKIE, PROTOCOL_VERSION, SIGNIN_PATH, STATIC, WS_PATH
from orchestrator_core.credentials import DEFAULT_TOKEN_TTL, Credentials
from orchestrator_core.errors import TechAssistError
from orchestrator_core.notices import Notice
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.turns import IncomingTurn, Reply, SessionKey, TurnKind, encodable, readable

log = logging.getLogger("techassist.web")

BRIDGE = "web"
#: Seconds a turn may run before the page is told the assistant is at work (the default).
TYPING_AFTER = 0.4
#: The largest sign-in form body read.
MAX_FORM = 4096
#: What a client message id looks like.
MESSAGE_ID = re.compile(r"c-[A-Za-z0-9_-]{1,64}")
#: What a server id a client may resume from looks like.
RESUME_ID = re.compile(r"[sn]-[A-Za-z0-9_-]{1,80}")

NOT_SIGNED_IN = "You are not signed in. Open the sign-in link your dispatcher sent you."
BAD_LINK = (
    "This sign-in link cannot be used: it was used already, it expired (links last 15 "
    "minutes) or it is not one of ours. Ask your dispatcher for a new one."
)
BAD_FRAME = (
    'I could not read that frame. Send JSON such as {"type": "message", "id": "c-1", '
    '"text": "yes"}; docs/protocol.md lists the frames.'
)
NEEDS_ID = 'Every message needs an id: "c-" and up to 64 letters, digits, "-" or "_".'
BAD_VERSION = "This page is out of date (protocol version {v}); reload it."
SLOW_DOWN = (
    "You are sending messages faster than I can take them (more than {limit} a minute), "
    "so I did not read that one. Wait a few seconds, then send it again."
)


def session_key(cuid: str) -> SessionKey:
    """The session key of a technician's web conversation."""
    return SessionKey(BRIDGE, "", "", cuid)


# ------------------------------------------------------------------ frames


@dataclass(frozen=True)
class ClientFrame:
    """A readable client frame: ``hello``, ``message`` or ``action``."""

    type: str
    id: str | None = None
    text: str = ""
    version: int | None = None
    resume: str | None = None
    fresh: bool = False
    """A hello from a page with nothing on screen yet: it is told where things stand."""


class FrameError(ValueError):
    """A client frame that cannot be taken; the message is for the technician's page."""


def parse_frame(raw: str | None) -> ClientFrame:
    """Read one client frame; ``FrameError`` says what is wrong with it."""
    if raw is None or raw.lstrip()[:1] != "{" or too_deep(raw):
        raise FrameError(BAD_FRAME)
    try:
        frame = json.loads(raw)
    except ValueError:
        raise FrameError(BAD_FRAME) from None
    if not isinstance(frame, dict):
        raise FrameError(BAD_FRAME)
    kind = frame.get("type")
    if kind == "hello":
        version, resume = frame.get("v"), frame.get("resume")
        if not isinstance(version, int) or isinstance(version, bool):
            raise FrameError(BAD_FRAME)
        if not isinstance(resume, str) or not RESUME_ID.fullmatch(resume):
            resume = None
        fresh = frame.get("fresh")
        if not isinstance(fresh, bool):
            fresh = resume is None
        return ClientFrame("hello", version=version, resume=resume, fresh=fresh)
    if kind not in ("message", "action"):
        raise FrameError(BAD_FRAME)
    text = frame.get("text" if kind == "message" else "value")
    if not isinstance(text, str) or not encodable(text):
        raise FrameError(BAD_FRAME)
    message_id = frame.get("id")
    if not isinstance(message_id, str) or not MESSAGE_ID.fullmatch(message_id):
        raise FrameError(NEEDS_ID)
    return ClientFrame(kind, id=message_id, text=text)


def own_origin(scheme: str, host: str) -> str | None:
    """This server's origin as a browser on ``host`` sees it."""
    return origin_of(f"{'https' if scheme in ('https', 'wss') else 'http'}://{host}")


async def _deny(websocket: WebSocket, status: int, text: str) -> None:
    """Refuse a handshake with an HTTP status; a server without that extension gets 1008."""
    try:
        await websocket.send_denial_response(PlainTextResponse(text, status))
    except RuntimeError:  # no denial-response extension: accept, then close with a reason
        await websocket.accept()
        await websocket.close(code=1008, reason=text[:120])


def reply_json(reply: Reply) -> dict[str, Any]:
    """One reply as the page reads it."""
    return {
        "kind": reply.kind.value,
        "text": reply.text,
        "choices": list(reply.choices),
        "needs": reply.needs,
        "sensitive": reply.sensitive,
        "data": reply.data,
    }


def reply_frame(
    replies: list[Reply], where: dict[str, Any] | None, ack: str | None
) -> dict[str, Any]:
    """One turn's frame: its replies, where the conversation stands, the message it answers."""
    frame_id = "s-" + (ack[2:] if ack is not None else secrets.token_hex(8))
    return {
        "type": "reply",
        "id": frame_id,
        "ack": ack,
        "replies": [reply_json(r) for r in replies],
        "where": where,
    }


def notice_frame(notice: Notice) -> dict[str, Any]:
    """A notice as a pushed frame."""
    return {
        "type": "notice",
        "id": notice.id,
        "kind": notice.kind,
        "text": notice.text,
        "at": notice.at,
        "data": notice.data,
    }


# ------------------------------------------------------------------ connections


@dataclass(eq=False)
class Connection:
    """One open page: its socket, its technician, and a lock so frames never interleave."""

    websocket: WebSocket
    cuid: str
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> SessionKey:
        return session_key(self.cuid)

    async def send(self, frame: dict[str, Any]) -> bool:
        """Send one frame; False when the page is already gone."""
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            return False
        text = json.dumps(frame, ensure_ascii=False, default=str)
        if not encodable(text):
            text = readable(text)
        async with self.sending:
            try:
                await self.websocket.send_text(text)
                return True
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                log.info("could not send to a web chat page that left: %s", exc)
                return False


class WebChatBridge:
    """Serves the technicians' web chat on one orchestrator."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        credentials: Credentials,
        *,
        origins: list[str] | None = None,
        messages_per_minute: int | None = None,
        idle_timeout: float | None = None,
        typing_after: float = TYPING_AFTER,
    ) -> None:
        self.orchestrator = orchestrator
        self.credentials = credentials
        allowed = {origin_of(o) for o in origins or [] if o.strip()}
        self.origins = frozenset(o for o in allowed if o is not None)
        self.messages_per_minute = messages_per_minute
        self.idle_timeout = idle_timeout
        self.typing_after = typing_after
        #: Open pages per technician's session key (string form).
        self.pages: dict[str, set[Connection]] = {}
        #: Pages open now (a metric may read it).
        self.open = 0

    # -- who is this

    def allows_origin(self, websocket: WebSocket) -> bool:
        """No Origin (not a browser), the server's own page, or an allowed origin."""
        origin = websocket.headers.get("origin")
        if origin is None:
            return True
        given = origin_of(origin)
        own = own_origin(websocket.url.scheme, websocket.headers.get("host", ""))
        return given is not None and (given == own or given in self.origins)

    async def technician(self, token: str | None) -> str | None:
        """The CUID a cookie's token belongs to, or None (no cookie, invalid, unreachable)."""
        if not token:
            return None
        try:
            return await self.credentials.verify_token(token)
        except TechAssistError as exc:
            log.error("cannot check a web chat token: %s", exc)
            return None

    # -- notices

    async def deliver(self, key: SessionKey) -> None:
        """Push the notices waiting for ``key`` to its open pages (the notifier's hint)."""
        pages = self.pages.get(key.as_str())
        if pages:
            await self._push_notices(key, list(pages))

    async def _push_notices(self, key: SessionKey, pages: list[Connection]) -> None:
        try:
            notices = await self.orchestrator.take_notices(key)
        except Exception:  # the core's failure must not close a page
            log.exception("cannot take the notices of %s", key.as_str())
            return
        await self._push_taken(key, pages, notices)

    async def _push_taken(
        self, key: SessionKey, pages: list[Connection], notices: list[Notice]
    ) -> None:
        """Push notices taken from the outbox; those no page took go back to it."""
        for i, notice in enumerate(notices):
            frame = notice_frame(notice)
            sent = [await page.send(frame) for page in pages]
            if not any(sent):
                # No page took it: back in the outbox, first, for the next page or turn.
                await self.orchestrator.keep_notices(key, notices[i:])
                return

    # -- the socket

    async def serve(self, websocket: WebSocket) -> None:
        """Run one page's socket until it closes; bad frames never end it."""
        client = websocket.client.host if websocket.client else "?"
        if not self.allows_origin(websocket):
            log.info("refused a web chat connection from %s: origin not allowed", client)
            await _deny(websocket, 403, "Connections from this web page's origin are not allowed.")
            return
        cuid = await self.technician(websocket.cookies.get(COOKIE))
        if cuid is None:
            log.info("refused a web chat connection from %s: not signed in", client)
            await _deny(websocket, 401, NOT_SIGNED_IN)
            return
        await websocket.accept()
        page = Connection(websocket, cuid)
        name = page.key.as_str()
        self.pages.setdefault(name, set()).add(page)
        self.open += 1
        rate = MessageRate(self.messages_per_minute) if self.messages_per_minute else None
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        message = await websocket.receive()
                except TimeoutError:
                    with contextlib.suppress(RuntimeError, OSError):
                        await websocket.close(code=1000, reason="idle")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                if rate is not None and not rate.take():
                    if rate.abused:
                        with contextlib.suppress(RuntimeError, OSError):
                            await websocket.close(code=1008, reason="message rate limit")
                        return
                    limit = self.messages_per_minute
                    await page.send({"type": "error", "message": SLOW_DOWN.format(limit=limit)})
                    continue
                try:
                    frame = parse_frame(message.get("text"))
                except FrameError as exc:
                    await page.send({"type": "error", "message": str(exc)})
                    continue
                if frame.type == "hello":
                    if frame.version != PROTOCOL_VERSION:
                        await page.send(
                            {"type": "error", "message": BAD_VERSION.format(v=frame.version)}
                        )
                        with contextlib.suppress(RuntimeError, OSError):
                            await websocket.close(code=1008, reason="protocol version")
                        return
                    await self._hello(page, frame)
                    continue
                await self._turn(page, frame)
        except WebSocketDisconnect:
            return
        finally:
            self.open -= 1
            pages = self.pages.get(name)
            if pages is not None:
                pages.discard(page)
                if not pages:
                    del self.pages[name]

    async def _hello(self, page: Connection, frame: ClientFrame) -> None:
        """Welcome a page: the notices it may have lost are sent again (``resume``), then
        a fresh page is told where things stand, and whatever waits is pushed."""
        await page.send(
            {
                "type": "welcome",
                "v": PROTOCOL_VERSION,
                "cuid": page.cuid,
                "resumed": not frame.fresh,
            }
        )
        try:
            # A fresh page's greeting turn drains the outbox itself (reminders dropped).
            again, taken = await self.orchestrator.resume_notices(
                page.key, frame.resume, take=not frame.fresh
            )
        except Exception:  # the core's failure must not close a page
            log.exception("cannot take the notices of %s", page.key.as_str())
            again, taken = [], []
        for notice in again:  # delivered already: a page that misses them again just misses
            await page.send(notice_frame(notice))
        if frame.fresh:
            turn = IncomingTurn(page.key, kind=TurnKind.START, cuid=page.cuid)
            outcome = await self.orchestrator.handle_turn(turn)
            await page.send(reply_frame(outcome.replies, outcome.where, None))
            await self._push_notices(page.key, [page])
        else:
            await self._push_taken(page.key, [page], taken)

    async def _turn(self, page: Connection, frame: ClientFrame) -> None:
        """One message or button: one reply frame, with typing or progress if it is slow."""
        kind = TurnKind.ACTION if frame.type == "action" else TurnKind.MESSAGE
        # The cookie decides who this is, on every turn: a session that is not identified
        # (its greeting failed) is identified as the cookie's technician, never by text.
        turn = IncomingTurn(
            page.key, text=frame.text, kind=kind, message_id=frame.id, cuid=page.cuid
        )
        slow = _Slow(page)
        timer = asyncio.get_running_loop().call_later(self.typing_after, slow.fire)
        try:
            outcome = await self.orchestrator.handle_turn(turn, progress=slow.progress)
        finally:
            timer.cancel()
            await slow.settle()
        await page.send(reply_frame(outcome.replies, outcome.where, frame.id))


class _Slow:
    """Typing and progress frames for one turn, sent only once it has run ``typing_after``."""

    def __init__(self, page: Connection) -> None:
        self.page = page
        self.text: str | None = None
        self.shown = False
        self.tasks: list[asyncio.Task[bool]] = []

    def fire(self) -> None:
        self.shown = True
        frame = {"type": "progress", "text": self.text} if self.text else {"type": "typing"}
        self.tasks.append(asyncio.ensure_future(self.page.send(frame)))

    async def progress(self, text: str) -> None:
        self.text = text
        if self.shown:
            await self.page.send({"type": "progress", "text": text})

    async def settle(self) -> None:
        """Let a typing frame already on its way go out before the reply."""
        for task in self.tasks:
            with contextlib.suppress(Exception):
                await task


# ------------------------------------------------------------------ pages and routes


def _page(title: str, body: str, status: int = 200, script: str | None = None) -> HTMLResponse:
    """A small server-rendered page in the chat's style."""
    module = f'<script type="module" src="/static/{script}"></script>' if script else ""
    text = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="/static/chat.css">
{module}
</head>
<body data-state="static">
<main class="card">
<h1>{html.escape(title)}</h1>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


#: Sent with every page: no framing, no inline script, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _same_origin(request: Request) -> bool:
    """A browser's form post comes from this server's own page (or no Origin was sent)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    given = origin_of(origin)
    return given is not None and given == own_origin(
        request.url.scheme, request.headers.get("host", "")
    )


class ChatSettings(Protocol):
    """The settings the web chat reads (``bot.settings.Settings`` has them)."""

    @property
    def ws_allowed_origins(self) -> str: ...
    @property
    def messages_per_minute(self) -> int: ...
    @property
    def idle_timeout(self) -> float: ...
    @property
    def web_typing_after(self) -> float: ...


class ChatServices(Protocol):
    """What the web chat needs of the running services (``bot.wiring.Services``)."""

    @property
    def settings(self) -> ChatSettings: ...
    @property
    def orchestrator(self) -> Orchestrator: ...
    @property
    def credentials(self) -> Credentials: ...


def mount_chat(app: FastAPI, services: ChatServices) -> WebChatBridge:
    """Add the web chat's routes to ``app``; the bridge is also ``app.state.web``.

    The legacy ``/start_task`` is left as it is.
    """
    settings = services.settings
    bridge = WebChatBridge(
        services.orchestrator,
        services.credentials,
        origins=settings.ws_allowed_origins.split(","),
        messages_per_minute=settings.messages_per_minute,
        idle_timeout=settings.idle_timeout,
        typing_after=settings.web_typing_after,
    )
    app.state.web = bridge
    index = (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page(request: Request) -> Response:
        """The chat page, for a signed-in technician."""
        if await bridge.technician(request.cookies.get(COOKIE)) is None:
            return _page("Not signed in", f"<p>{html.escape(NOT_SIGNED_IN)}</p>", 401)
        return HTMLResponse(index, headers=SECURITY_HEADERS)

    @app.get(SIGNIN_PATH, response_class=HTMLResponse, include_in_schema=False)
    async def signin_page(t: str = "") -> Response:
        """The page a sign-in link opens: a button that uses the link (a GET never does)."""
        body = (
            '<form method="post" action="/api/signin" id="signin">'
            f'<input type="hidden" name="t" value="{html.escape(t, quote=True)}">'
            "<p>Sign in to TechAssist on this device.</p>"
            '<button type="submit">Sign in</button>'
            "</form>"
        )
        return _page("Sign in", body, script="signin.js")

    @app.post("/api/signin", include_in_schema=False)
    async def signin(request: Request) -> Response:
        """Exchange a one-time link token for the technician's cookie, then go to the chat."""
        if not _same_origin(request):
            return _page("Sign-in refused", "<p>Sign in from the link itself.</p>", 403)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return _page("Sign-in refused", f"<p>{html.escape(BAD_LINK)}</p>", 400)
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=4)
        except (UnicodeDecodeError, ValueError):
            form = {}
        link = (form.get("t") or [""])[0].strip()
        try:
            cuid = await bridge.credentials.redeem_link(link)
            issued = await bridge.credentials.issue_token(cuid) if cuid else None
        except TechAssistError as exc:
            log.error("cannot sign a technician in: %s", exc)
            return _page(
                "Try again soon", "<p>Sign-in is briefly unavailable; try again soon.</p>", 503
            )
        if issued is None:
            log.info("refused a web chat sign-in: the link is used, expired or unknown")
            return _page("Sign-in link not valid", f"<p>{html.escape(BAD_LINK)}</p>", 400)
        log.info("signed %s in to the web chat", issued.cuid)
        response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            COOKIE,
            issued.secret,
            max_age=int(DEFAULT_TOKEN_TTL.total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.websocket(WS_PATH)
    async def chat_socket(websocket: WebSocket) -> None:
        await bridge.serve(websocket)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return bridge
