"""The dispatcher console at ``/ops``: operators sign in, watch live sessions and
work the escalations queue.

It only translates: HTTP requests become calls on the core's ``Dispatch`` and
``Operators``, their records become JSON. What it owns is the operator's web
session:

- the cookie ``techassist_ops`` carries the operator's name, a random session
  id and an expiry (12 h), signed with HMAC-SHA256 under a key derived from the
  shared secret key (``derive("console cookie")``), so every instance that
  shares ``TECHASSIST_SECRET_KEY`` accepts it and none can be forged without it;
- every POST carries a CSRF token (form field ``csrf`` or header
  ``X-CSRF-Token``): an HMAC under ``derive("console csrf")`` over the cookie's
  session id (over a sign-in nonce cookie for the sign-in form itself);
- failed sign-ins are counted per name and client address; past the limit the
  form is refused unchecked for a while, and a wrong name and a wrong password
  get the same answer.

``/ops/events`` is a server-sent event stream: one poller per process reads the
live sessions and the queue about every second while someone watches, and each
stream is sent a kind (``sessions``, ``queue``) only when it changed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import enum
import hashlib
import hmac
import html
import importlib
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

log = logging.getLogger("techassist.console")

STATIC = Path(__file__).resolve().parent / "static"

COOKIE = "techassist_ops"
"""The operator's signed session cookie."""
LOGIN_COOKIE = "techassist_ops_login"
"""A random nonce the sign-in form's CSRF token is bound to."""
COOKIE_LIFETIME = 12 * 3600
LOGIN_NONCE_LIFETIME = 3600
LOGIN_FAILURES = 5
"""Failed sign-ins for one name from one address within ``LOGIN_WINDOW``; then refused."""
LOGIN_WINDOW = 300.0
LOGIN_TRACKED = 10_000
"""Name and address pairs remembered at most (the oldest are forgotten first)."""
POLL_INTERVAL = 1.0
KEEPALIVE = 15.0
MAX_FORM = 8192
MAX_ANSWER = 4000
MAX_REASON = 500
MAX_NAME = 64
MAX_ID = 64
ACCOUNT_CHECK = 5.0
"""Seconds an operator's account is known to exist; a removed one is signed out within it."""

WRONG = "Wrong name or password."
TOO_MANY = "Too many failed sign-ins for this name from here; wait a few minutes and try again."
EXPIRED_FORM = "This form has expired. It has been renewed: sign in again."
SIGNED_OUT = "Your console session has ended; sign in again."
BAD_CSRF = "This request lacked a valid CSRF token; reload the page and try again."
FAILED = "Something went wrong on the server; try again in a moment."

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --- What the console needs from the core (Dispatch and Operators in orchestrator_core) ---


class DispatchError(Exception):
    """Stands for the core's refusal type until it is found on the dispatch object."""


class ConsoleDispatch(Protocol):
    async def live_sessions(self, limit: int = 500) -> list[Any]: ...

    async def queue(self, status: str | None = None) -> list[Any]: ...

    async def get(self, escalation_id: str) -> Any: ...

    async def take(self, escalation_id: str, operator: str) -> Any: ...

    async def answer(self, escalation_id: str, operator: str, text: str) -> Any: ...

    async def close(self, escalation_id: str, operator: str) -> Any: ...

    async def hand_back(self, escalation_id: str, operator: str) -> Any: ...

    async def cancel(self, escalation_id: str, operator: str, reason: str) -> Any: ...

    async def audit(self, order_id: str) -> list[Any]: ...


class ConsoleOperators(Protocol):
    async def verify(self, name: str, password: str) -> bool: ...

    async def exists(self, name: str) -> bool: ...


def refusal_types() -> tuple[type[BaseException], ...]:
    """The exception classes that carry a refusal meant for the operator."""
    try:
        core_dispatch = importlib.import_module("orchestrator_core.dispatch")
    except ImportError:  # the core without a dispatch module: nothing is refused that way
        return (DispatchError,)
    refused = getattr(core_dispatch, "DispatchError", None)
    if isinstance(refused, type) and issubclass(refused, BaseException):
        return (refused, DispatchError)
    return (DispatchError,)


# --- Signed cookies and CSRF tokens ---


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class OperatorSession:
    operator: str
    sid: str
    expires: int


def encode_cookie(key: bytes, operator: str, sid: str, expires: int) -> str:
    """The cookie value: base64 JSON payload, a dot, base64 HMAC-SHA256 of the payload."""
    payload = _b64(json.dumps({"op": operator, "sid": sid, "exp": expires}).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def decode_cookie(key: bytes, value: str | None, now: float) -> OperatorSession | None:
    """The session a cookie carries, or None when it is missing, forged, malformed or expired."""
    if not value or len(value) > 1024 or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac.encode(), expected.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = OperatorSession(str(data["op"]), str(data["sid"]), int(data["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    return session if session.expires > now else None


class Keys:
    """The console's cookie and CSRF keys, derived from the secret key."""

    def __init__(self, cookie: bytes, csrf: bytes, clock: Callable[[], float] = time.time):
        self.cookie = cookie
        self._csrf = csrf
        self.clock = clock

    @classmethod
    def from_secrets(cls, secrets_: object) -> Keys:
        derive = getattr(secrets_, "derive", None)
        if callable(derive):
            return cls(derive("console cookie"), derive("console csrf"))
        # Sealing without derivable keys: this process's own keys (cookies last as it does).
        return cls(secrets.token_bytes(32), secrets.token_bytes(32))

    def issue(self, operator: str) -> tuple[str, OperatorSession]:
        session = OperatorSession(
            operator, secrets.token_hex(16), int(self.clock()) + COOKIE_LIFETIME
        )
        return encode_cookie(self.cookie, operator, session.sid, session.expires), session

    def read(self, value: str | None) -> OperatorSession | None:
        return decode_cookie(self.cookie, value, self.clock())

    def csrf(self, purpose: str, nonce: str) -> str:
        return _b64(hmac.new(self._csrf, f"{purpose} {nonce}".encode(), hashlib.sha256).digest())

    def check_csrf(self, purpose: str, nonce: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(
            (given or "").encode(), self.csrf(purpose, nonce).encode()
        )


# --- Sign-in attempts ---


class LoginLimiter:
    """Failed sign-ins per (name, address) in a sliding window, with bounded memory."""

    def __init__(
        self,
        limit: int = LOGIN_FAILURES,
        window: float = LOGIN_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str]) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        cutoff = self.clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocked(self, name: str, address: str) -> bool:
        times = self._recent((name.casefold(), address))
        return times is not None and len(times) >= self.limit

    def failed(self, name: str, address: str) -> None:
        key = (name.casefold(), address)
        times = self._recent(key) or deque()
        times.append(self.clock())
        self._failures[key] = times
        self._failures.move_to_end(key)
        while len(self._failures) > LOGIN_TRACKED:
            self._failures.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        self._failures.pop((name.casefold(), address), None)


# --- JSON ---


def jsonable(value: Any) -> Any:
    """Records as plain JSON values: dataclasses and pydantic models become objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return jsonable(dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# --- The live feed ---


Poll = Callable[[], Awaitable[tuple[list[Any], list[Any]]]]


class Subscriber:
    """One event stream's pending kinds: only the newest state of each is kept."""

    def __init__(self) -> None:
        self.pending: dict[str, str] = {}
        self.ready = asyncio.Event()

    def put(self, kind: str, data: str) -> None:
        self.pending[kind] = data
        self.ready.set()

    def take(self) -> dict[str, str]:
        pending, self.pending = self.pending, {}
        self.ready.clear()
        return pending


class Feed:
    """Polls the sessions and the queue while at least one stream watches; pushes changes.

    A session's idle time grows every second: changes are found without it, and each
    ``sessions`` event carries the server's clock, so the page counts idle time itself.
    """

    def __init__(self, poll: Poll, interval: float = POLL_INTERVAL) -> None:
        self.poll = poll
        self.interval = interval
        self.subscribers: set[Subscriber] = set()
        self.latest: dict[str, tuple[str, str]] = {}  # kind -> (compared form, data)
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        for kind, (_, data) in self.latest.items():
            subscriber.put(kind, data)
        self.subscribers.add(subscriber)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run())
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if not self.subscribers and self.task is not None:
            self.task.cancel()
            self.task = None
            self.latest.clear()

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # logged once per outage, tried again every interval
                if not failing:
                    log.warning("the console cannot read the sessions and the queue: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("the console reads the sessions and the queue again")
                failing = False
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        sessions, queue = await self.poll()
        live = [jsonable(s) for s in sessions]
        steady = [{k: v for k, v in s.items() if k != "idle_seconds"} for s in live]
        self._offer("sessions", _dumps(steady), lambda: {"at": time.time(), "sessions": live})
        items = [jsonable(e) for e in queue]
        self._offer("queue", _dumps(items), lambda: {"at": time.time(), "escalations": items})

    def _offer(self, kind: str, compared: str, data: Callable[[], Any]) -> None:
        seen = self.latest.get(kind)
        if seen is not None and seen[0] == compared:
            return
        text = _dumps(data())
        self.latest[kind] = (compared, text)
        for subscriber in list(self.subscribers):
            subscriber.put(kind, text)


# --- Pages ---


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def login_page(csrf: str, message: str = "", name: str = "") -> str:
    alert = (
        f'<p id="login-error" class="error" role="alert">{html.escape(message)}</p>'
        if message
        else ""
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · TechAssist dispatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ops/ops.css">
</head>
<body class="login">
<main>
<h1>TechAssist dispatch</h1>
<form id="login" method="post" action="/ops/login">
{alert}
<input type="hidden" name="csrf" value="{html.escape(csrf)}">
<p><label for="name">Operator name</label>
<input id="name" name="name" autocomplete="username" required maxlength="{MAX_NAME}"
 value="{html.escape(name)}" autofocus></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
"""


def console_page(operator: str, csrf: str) -> str:
    return (
        _static("ops.html")
        .replace("{{operator}}", html.escape(operator))
        .replace("{{csrf}}", html.escape(csrf))
    )


def _page(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/html", headers=SECURITY_HEADERS)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the last of each name); None when it is too big."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[-1] for k, v in fields.items()}


async def _json(request: Request) -> dict[str, Any] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- The routes ---


def mount_console(app: FastAPI, services: Any) -> None:
    """Add the console's routes to ``app``, on ``services.dispatch`` and ``services.operators``.

    The keys come from the session manager's secrets (``derive``), so instances
    that share ``TECHASSIST_SECRET_KEY`` accept each other's cookies.
    """
    keys = Keys.from_secrets(services.sessions.secrets)
    limiter = LoginLimiter()
    refused = refusal_types()

    def dispatch() -> ConsoleDispatch:
        found: ConsoleDispatch = services.dispatch
        return found

    def operators() -> ConsoleOperators:
        found: ConsoleOperators = services.operators
        return found

    async def poll() -> tuple[list[Any], list[Any]]:
        return await dispatch().live_sessions(), await dispatch().queue()

    feed = Feed(poll)
    app.state.console_feed = feed
    accounts: dict[str, float] = {}  # operator -> when their account was last seen

    async def still_there(operator: str) -> bool:
        """Whether the operator's account still exists (``techassist operators remove``
        signs them out); remembered for ``ACCOUNT_CHECK`` seconds, and a database that
        does not answer leaves a known operator in."""
        now = time.monotonic()
        seen = accounts.get(operator)
        if seen is not None and now - seen < ACCOUNT_CHECK:
            return True
        try:
            there = await operators().exists(operator)
        except Exception:
            log.warning("checking that operator %s still exists failed", operator)
            return seen is not None
        if there:
            if len(accounts) > LOGIN_TRACKED:
                accounts.clear()
            accounts[operator] = now
        else:
            accounts.pop(operator, None)
        return there

    async def signed_in(request: Request) -> OperatorSession | None:
        session = keys.read(request.cookies.get(COOKIE))
        if session is None or not await still_there(session.operator):
            return None
        return session

    def csrf_ok(request: Request, session: OperatorSession, given: str | None = None) -> bool:
        token = request.headers.get("x-csrf-token") or given
        return keys.check_csrf("session", session.sid, token)

    def login_nonce(request: Request) -> tuple[str, bool]:
        """The sign-in nonce this browser holds (verified), or a new one (then True)."""
        value = request.cookies.get(LOGIN_COOKIE, "")
        nonce, _, mac = value.partition(".")
        if nonce and len(value) < 200 and keys.check_csrf("nonce", nonce, mac):
            return nonce, False
        return secrets.token_hex(16), True

    def with_nonce(response: Response, request: Request, nonce: str) -> Response:
        response.set_cookie(
            LOGIN_COOKIE,
            f"{nonce}.{keys.csrf('nonce', nonce)}",
            max_age=LOGIN_NONCE_LIFETIME,
            path="/ops",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )
        return response

    @app.get("/ops/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        if await signed_in(request) is not None:
            return RedirectResponse("/ops", status_code=303)
        nonce, _ = login_nonce(request)
        return with_nonce(_page(login_page(keys.csrf("login", nonce))), request, nonce)

    @app.post("/ops/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        nonce, new = login_nonce(request)
        form = await _form(request)
        if form is None:
            return with_nonce(
                _page(login_page(keys.csrf("login", nonce), "That form is too large."), 413),
                request,
                nonce,
            )
        name = form.get("name", "").strip()[: MAX_NAME + 1]
        password = form.get("password", "")
        if new or not keys.check_csrf("login", nonce, form.get("csrf")):
            page = login_page(keys.csrf("login", nonce), EXPIRED_FORM, name[:MAX_NAME])
            return with_nonce(_page(page, 403), request, nonce)
        address = _address(request)
        if limiter.blocked(name, address):
            log.warning("console sign-in refused unchecked: too many failures from %s", address)
            page = login_page(keys.csrf("login", nonce), TOO_MANY, name[:MAX_NAME])
            return with_nonce(_page(page, 429), request, nonce)
        ok = False
        if name and password and len(name) <= MAX_NAME and len(password) <= 1024:
            try:
                ok = await operators().verify(name, password)
            except Exception:
                log.exception("checking an operator's password failed")
                page = login_page(keys.csrf("login", nonce), FAILED, name)
                return with_nonce(_page(page, 503), request, nonce)
        if not ok:
            limiter.failed(name, address)
            log.info("console sign-in failed from %s", address)
            page = login_page(keys.csrf("login", nonce), WRONG, name[:MAX_NAME])
            return with_nonce(_page(page, 401), request, nonce)
        limiter.succeeded(name, address)
        cookie, _ = keys.issue(name)
        log.info("operator %s signed in to the console", name)
        response = RedirectResponse("/ops", status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=COOKIE_LIFETIME,
            path="/ops",
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ops")
        return response

    @app.post("/ops/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return RedirectResponse("/ops/login", status_code=303)
        form = await _form(request)
        if not csrf_ok(request, session, (form or {}).get("csrf")):
            return _error(403, BAD_CSRF)
        response = RedirectResponse("/ops/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ops")
        return response

    @app.get("/ops", include_in_schema=False)
    async def console(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return RedirectResponse("/ops/login", status_code=303)
        return _page(console_page(session.operator, keys.csrf("session", session.sid)))

    @app.get("/ops/ops.js", include_in_schema=False)
    async def script() -> Response:
        return Response(
            _static("ops.js"),
            media_type="text/javascript",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    @app.get("/ops/ops.css", include_in_schema=False)
    async def style() -> Response:
        return Response(
            _static("ops.css"),
            media_type="text/css",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    async def guarded(
        request: Request, act: Callable[[OperatorSession], Awaitable[Any]], *, post: bool = False
    ) -> Response:
        session = await signed_in(request)
        if session is None:
            return _error(401, SIGNED_OUT)
        if post and not csrf_ok(request, session):
            return _error(403, BAD_CSRF)
        try:
            result = await act(session)
        except refused as exc:
            return _error(409, str(exc))
        except Exception:
            log.exception("a console request failed: %s %s", request.method, request.url.path)
            return _error(500, FAILED)
        if isinstance(result, Response):
            return result
        return JSONResponse(jsonable(result), headers=SECURITY_HEADERS)

    @app.get("/ops/api/me", include_in_schema=False)
    async def me(request: Request) -> Response:
        async def act(session: OperatorSession) -> Any:
            return {"operator": session.operator, "csrf": keys.csrf("session", session.sid)}

        return await guarded(request, act)

    @app.get("/ops/api/sessions", include_in_schema=False)
    async def sessions(request: Request) -> Response:
        async def act(_: OperatorSession) -> Any:
            return {"at": time.time(), "sessions": await dispatch().live_sessions()}

        return await guarded(request, act)

    @app.get("/ops/api/escalations", include_in_schema=False)
    async def escalations(request: Request, status: str | None = None) -> Response:
        async def act(_: OperatorSession) -> Any:
            if status not in (None, "", "open", "taken", "answered", "closed"):
                return _error(400, "status must be one of open, taken, answered, closed")
            return {"escalations": await dispatch().queue(status or None)}

        return await guarded(request, act)

    def known_id(escalation_id: str) -> bool:
        return 0 < len(escalation_id) <= MAX_ID and escalation_id.isprintable()

    async def found(escalation_id: str) -> Response | None:
        """A 404 answer when the escalation does not exist."""
        if not known_id(escalation_id):
            return _error(404, "No such escalation.")
        try:
            await dispatch().get(escalation_id)
        except refused as exc:
            return _error(404, str(exc))
        return None

    @app.get("/ops/api/escalations/{escalation_id}", include_in_schema=False)
    async def escalation(request: Request, escalation_id: str) -> Response:
        async def act(_: OperatorSession) -> Any:
            missing = await found(escalation_id)
            return missing or await dispatch().get(escalation_id)

        return await guarded(request, act)

    def action(
        name: str,
        run: Callable[[str, str, dict[str, Any]], Awaitable[Any]],
        check: Callable[[dict[str, Any]], str | None] = lambda _: None,
    ) -> None:
        async def endpoint(request: Request, escalation_id: str) -> Response:
            async def act(session: OperatorSession) -> Any:
                body = await _json(request)
                if body is None:
                    return _error(400, "The request body must be a small JSON object.")
                problem = check(body)
                if problem is not None:
                    return _error(400, problem)
                missing = await found(escalation_id)
                if missing is not None:
                    return missing
                result = await run(escalation_id, session.operator, body)
                log.info("operator %s: %s %s", session.operator, name, escalation_id)
                return result

            return await guarded(request, act, post=True)

        app.add_api_route(
            f"/ops/api/escalations/{{escalation_id}}/{name}",
            endpoint,
            methods=["POST"],
            include_in_schema=False,
        )

    def text_field(field: str, what: str, limit: int) -> Callable[[dict[str, Any]], str | None]:
        def check(body: dict[str, Any]) -> str | None:
            value = body.get(field)
            if not isinstance(value, str) or not value.strip():
                return f"Write {what} first."
            if len(value) > limit:
                return f"{what[0].upper()}{what[1:]} is too long: at most {limit} characters."
            if not all(c.isprintable() or c in "\n\t" for c in value):
                return f"{what[0].upper()}{what[1:]} holds characters that cannot be sent."
            return None

        return check

    action("take", lambda i, op, _: dispatch().take(i, op))
    action(
        "answer",
        lambda i, op, body: dispatch().answer(i, op, str(body["text"]).strip()),
        text_field("text", "an answer", MAX_ANSWER),
    )
    action("handback", lambda i, op, _: dispatch().hand_back(i, op))
    action("close", lambda i, op, _: dispatch().close(i, op))
    action(
        "cancel",
        lambda i, op, body: dispatch().cancel(i, op, str(body["reason"]).strip()),
        text_field("reason", "a reason", MAX_REASON),
    )

    @app.get("/ops/api/orders/{order_id}/audit", include_in_schema=False)
    async def audit(request: Request, order_id: str) -> Response:
        async def act(_: OperatorSession) -> Any:
            if not known_id(order_id):
                return _error(404, "No such order.")
            return {"order_id": order_id, "entries": await dispatch().audit(order_id)}

        return await guarded(request, act)

    @app.get("/ops/events", include_in_schema=False)
    async def events(request: Request) -> Response:
        session = await signed_in(request)
        if session is None:
            return _error(401, SIGNED_OUT)

        def stopping() -> bool:
            server = getattr(request.app.state, "server", None)
            return bool(getattr(server, "should_exit", False))

        async def stream() -> AsyncIterator[str]:
            subscriber = feed.subscribe()
            quiet = 0.0
            try:
                yield "retry: 1000\n\n"
                while not stopping():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(subscriber.ready.wait(), 1.0)
                    if await signed_in(request) is None:
                        yield f"event: signout\ndata: {_dumps({'error': SIGNED_OUT})}\n\n"
                        return
                    pending = subscriber.take()
                    for kind, data in pending.items():
                        yield f"event: {kind}\ndata: {data}\n\n"
                    quiet = 0.0 if pending else quiet + 1.0
                    if quiet >= KEEPALIVE:
                        quiet = 0.0
                        yield ": keepalive\n\n"
            finally:
                feed.unsubscribe(subscriber)

        headers = dict(SECURITY_HEADERS)
        headers["X-Accel-Buffering"] = "no"
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


__all__ = [
    "COOKIE",
    "ConsoleDispatch",
    "ConsoleOperators",
    "Feed",
    "Keys",
    "LoginLimiter",
    "decode_cookie",
    "encode_cookie",
    "mount_console",
]
