"""``FakeSlack``: the Web API and Socket Mode on one aiohttp server at 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fake_slack.events import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    block_actions,
    events_api_envelope,
    find_button,
    interactive_envelope,
    new_envelope_id,
    next_event_id,
)
from tests.fake_slack.records import (
    Ack,
    ApiCall,
    Connection,
    Envelope,
    ResponseUrlPost,
    short,
)
from tests.fake_slack.waiting import Changes
from tests.fake_slack.web_api import Fault, WebApi

T = TypeVar("T")

CLOSE_TIMEOUT = 1.0
"""Seconds to wait for a client's reply to our close frame before dropping it."""


class FakeSlack:
    """Slack as the real slack_sdk and slack-bolt clients see it, recording everything.

    ``async with FakeSlack() as fake:`` serves ``fake.api_url`` (pass it as an
    ``AsyncWebClient`` ``base_url``) and hands out ``ws://`` Socket Mode URLs from
    ``apps.connections.open``. Events API envelopes not acked within ``ack_deadline`` seconds
    are redelivered, as Slack does, up to ``max_retries`` times.

    Everything a test touches hangs off this one object (``fake.send_event``, ``fake.posts``,
    ``fake.acks``...); the Web API lives in ``WebApi`` and the payload shapes in ``events``,
    but the Socket Mode state stays here because splitting it out would only add forwarding.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        bot_name: str = "techassist",
        ack_deadline: float = 3.0,
        max_retries: int = 3,
        send_timeout: float = 5.0,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.ack_deadline = ack_deadline
        """Seconds an ``events_api`` envelope may stay unacked before it is sent again."""
        self.max_retries = max_retries
        """Redeliveries per event (Slack: 3); 0 turns automatic redelivery off."""
        self.send_timeout = send_timeout
        """Seconds ``send_event``/``send_action`` wait for a socket before failing."""
        self.calls: list[ApiCall] = []
        self.connections: list[Connection] = []
        self.envelopes_sent: list[Envelope] = []
        self.acks: list[Ack] = []
        self.responses: list[ResponseUrlPost] = []
        self.unexpected: list[str] = []
        """Socket frames from the client that were not acks."""
        self.api = WebApi(
            bot_token=bot_token,
            app_token=app_token,
            bot_name=bot_name,
            socket_url=self._issue_socket_url,
            record=self._record_call,
        )
        self._envelopes: dict[str, Envelope] = {}
        self._tickets: set[str] = set()
        self._ticket_counter = itertools.count(1)
        self._response_counter = itertools.count(1)
        self._changes = Changes()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a port the OS picks."""
        if self._runner is not None:
            raise RuntimeError("FakeSlack is already started")
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api.handle)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/actions/{n}", self._response_url)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=CLOSE_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Cancel pending redeliveries, close every socket, stop listening."""
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in self.connections:
            if connection.open:
                await _close(connection.ws, WSCloseCode.GOING_AWAY, b"fake slack stopped")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started; use `async with FakeSlack() as fake`")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient``, with the trailing slash slack_sdk expects."""
        return f"{self.base_url}/api/"

    # -- Web API state and faults ---------------------------------------------------------

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """The ``users.info`` directory; set ``fake.users["U1"] = {...}`` or use ``add_user``."""
        return self.api.users

    @property
    def messages(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The bot's messages as they stand now (after updates), by ``(channel, ts)``."""
        return self.api.messages

    def add_user(
        self, user_id: str, *, email: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Put a realistic user object in the ``users.info`` directory and return it."""
        name = name or user_id.lower()
        profile: dict[str, Any] = {"real_name": name, "display_name": name}
        if email is not None:
            profile["email"] = email
        user = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": name,
            "deleted": False,
            "is_bot": False,
            "tz": "Europe/Berlin",
            "profile": profile,
        }
        self.users[user_id] = user
        return user

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 and ``Retry-After``.

        slack_sdk sleeps ``Retry-After`` plus up to one second of jitter before retrying.
        """
        fault = Fault(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})
        self.api.faults[method].extend([fault] * times)

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``."""
        self.api.faults[method].extend([Fault(200, {"ok": False, "error": error}, {})] * times)

    def stub(self, method: str, response: dict[str, Any]) -> None:
        """Answer every (bot-token) call of ``method`` with ``response``, e.g. a method we lack."""
        self.api.stubs[method] = response

    def calls_to(self, method: str) -> list[ApiCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def posts(self) -> list[dict[str, Any]]:
        """Arguments of each successful ``chat.postMessage``, plus the ``ts`` Slack assigned."""
        return [
            {**call.args, "ts": call.response["ts"]}
            for call in self.calls_to("chat.postMessage")
            if call.ok
        ]

    @property
    def updates(self) -> list[dict[str, Any]]:
        """Arguments of each successful ``chat.update`` (``ts`` names the edited message)."""
        return [call.args for call in self.calls_to("chat.update") if call.ok]

    # -- Socket Mode: connections ---------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        return len(self.connections)

    @property
    def open_connections(self) -> list[Connection]:
        """The sockets open now, oldest first: with several app instances, one (or more) each."""
        return [connection for connection in self.connections if connection.open]

    @property
    def connected(self) -> bool:
        return any(connection.open for connection in self.connections)

    async def wait_connected(self, count: int | None = None, timeout: float = 5.0) -> Connection:
        """Wait for an open socket (and, with ``count``, for that many opened in all)."""

        def ready() -> Connection | None:
            if count is not None and self.connections_opened < count:
                return None
            return self._current_connection()

        what = "a Socket Mode connection" + (f" (#{count})" if count else "")
        return await self.wait_for(ready, timeout=timeout, what=what)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message; the client should reconnect on its own."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        for connection in self.connections:
            if connection.open:
                with contextlib.suppress(ConnectionError):
                    await connection.ws.send_json(message)

    async def drop(self, timeout: float = 2.0) -> None:
        """Cut every socket at the TCP level: no close frame, no ``disconnect`` message."""
        dropped = [connection for connection in self.connections if connection.open]
        for connection in dropped:
            transport = connection.request.transport
            if transport is not None:
                transport.abort()
        await self.wait_for(
            lambda: all(c.closed_at is not None for c in dropped),
            timeout=timeout,
            what="the dropped sockets to close",
        )

    def _issue_socket_url(self) -> str:
        ticket = str(next(self._ticket_counter))
        self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}"

    def _current_connection(self) -> Connection | None:
        """The newest open socket: where Slack would send the next envelope."""
        return next((c for c in reversed(self.connections) if c.open), None)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets or self._stopping:
            # Slack refuses a socket URL it did not hand out.
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True, timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        connection = Connection(-1, ticket, time.monotonic(), ws, request)
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": 1 + sum(1 for c in self.connections if c.open),
                    "debug_info": {
                        "host": "fake-applink",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
            # Only now may envelopes go out on it: Slack always says hello first.
            connection.index = len(self.connections)
            self.connections.append(connection)
            self._notify()
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_text(connection, frame.data)
        except ConnectionError:
            pass  # dropped by drop() or by the client; recorded below
        finally:
            connection.closed_at = time.monotonic()
            self._notify()
        return ws

    def _on_text(self, connection: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            envelope = self._envelopes.get(message["envelope_id"])
            at = time.monotonic()
            if envelope is not None and envelope.acked_at is None:
                envelope.acked_at = at
            self.acks.append(
                Ack(message["envelope_id"], message.get("payload"), at, connection.index, envelope)
            )
        else:
            self.unexpected.append(data)
        self._notify()

    # -- Socket Mode: envelopes -----------------------------------------------------------

    async def send_event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        team_id: str = TEAM_ID,
        retry_attempt: int = 0,
        retry_reason: str = "",
        connection: Connection | None = None,
    ) -> str:
        """Deliver an Events API ``event`` in an ``events_api`` envelope; its envelope id.

        It goes on ``connection`` if given (one of ``open_connections``: Slack picks any of an
        app's sockets), else on the newest open socket.
        """
        body = events_api_envelope(
            event,
            event_id=event_id or next_event_id(),
            team_id=team_id,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )
        return (await self._send_on(body, connection)).envelope_id

    async def send_event_to_all(
        self, event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID
    ) -> list[str]:
        """Deliver one event (one ``event_id``) on every open socket at once, as Slack may
        when several app instances are connected; the envelope ids, one per socket."""
        body = events_api_envelope(event, event_id=event_id or next_event_id(), team_id=team_id)
        bodies = []
        for connection in self.open_connections:
            copied = copy.deepcopy(body)
            copied["envelope_id"] = new_envelope_id()
            bodies.append((copied, connection))
        sent = await asyncio.gather(
            *(self._send(b, timeout=self.send_timeout, connection=c) for b, c in bodies)
        )
        return [envelope.envelope_id for envelope in sent]

    async def redeliver(
        self,
        envelope_id: str,
        *,
        retry_attempt: int | None = None,
        retry_reason: str = "timeout",
        connection: Connection | None = None,
    ) -> str:
        """Send that envelope's event again (same ``event_id``, new envelope id), acked or not.

        ``retry_attempt`` defaults to the original's plus one. With several sockets open, Slack
        may retry on another one than the first delivery's: pass it as ``connection``.
        Returns the new envelope id.
        """
        original = self.envelope(envelope_id)
        if original.type != "events_api":
            raise ValueError(f"only events_api envelopes are redelivered, not {original.type}")
        body = copy.deepcopy(original.body)
        body["envelope_id"] = new_envelope_id()
        body["retry_attempt"] = (
            original.retry_attempt + 1 if retry_attempt is None else retry_attempt
        )
        body["retry_reason"] = retry_reason
        return (await self._send_on(body, connection)).envelope_id

    async def resend_event(
        self, event_id: str, *, retry_attempt: int | None = None, retry_reason: str = "timeout"
    ) -> str:
        """``redeliver`` the latest envelope that carried ``event_id``."""
        for envelope in reversed(self.envelopes_sent):
            if envelope.event_id == event_id:
                return await self.redeliver(
                    envelope.envelope_id, retry_attempt=retry_attempt, retry_reason=retry_reason
                )
        raise AssertionError(f"no envelope carried event_id {event_id}\n{self.summary()}")

    async def send_action(
        self,
        user: str,
        value: str,
        *,
        channel: str,
        message_ts: str,
        action_id: str | None = None,
        block_id: str | None = None,
    ) -> str:
        """Press a button on message ``message_ts``: an ``interactive`` ``block_actions`` envelope.

        If the bot posted that message, the payload carries the message as it stands now, and
        the button with this ``value`` supplies ``action_id``, ``block_id`` and its text.
        Otherwise ``action_id`` defaults to ``"choice"`` and ``block_id`` to ``"actions"``.
        """
        stored = self.messages.get((channel, message_ts))
        message: dict[str, Any] = (
            copy.deepcopy(stored)
            if stored is not None
            else {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": message_ts}
        )
        button = find_button(message.get("blocks") or [], value, action_id) or {}
        payload = block_actions(
            user,
            value,
            channel=channel,
            message=message,
            action_id=action_id or button.get("action_id", "choice"),
            block_id=block_id or button.get("block_id", "actions"),
            button_text=button.get("text"),
            response_url=f"{self.base_url}/actions/{next(self._response_counter)}",
        )
        return (
            await self._send(interactive_envelope(payload), timeout=self.send_timeout)
        ).envelope_id

    def envelope(self, envelope_id: str) -> Envelope:
        try:
            return self._envelopes[envelope_id]
        except KeyError:
            raise AssertionError(
                f"the fake never sent envelope {envelope_id}\n{self.summary()}"
            ) from None

    def envelopes_for(self, event_id: str) -> list[Envelope]:
        """Every delivery of one event, first to last."""
        return [e for e in self.envelopes_sent if e.event_id == event_id]

    async def _send_on(self, body: dict[str, Any], connection: Connection | None) -> Envelope:
        """A test's own send: on ``connection``, which must belong to this fake, if given."""
        if connection is not None and not any(c is connection for c in self.connections):
            raise ValueError(f"connection #{connection.index} is not one of this fake's sockets")
        return await self._send(body, timeout=self.send_timeout, connection=connection)

    async def _send(
        self, body: dict[str, Any], *, timeout: float | None, connection: Connection | None = None
    ) -> Envelope:
        if self._stopping:
            raise RuntimeError("FakeSlack is stopping")
        # Like Slack, hold an envelope while no socket is open; a redelivery waits as long as
        # it takes (it is cancelled when the fake stops), a test's own send gives up in time.
        if connection is None:
            connection = await self.wait_for(
                self._current_connection,
                timeout=timeout if timeout is not None else float("inf"),
                what="a socket to send on",
            )
        envelope = Envelope(body, time.monotonic(), connection.index)
        self._envelopes[envelope.envelope_id] = envelope
        self.envelopes_sent.append(envelope)
        try:
            await connection.ws.send_str(json.dumps(body))
        except (ConnectionError, RuntimeError):
            envelope.connection = None  # lost with the socket; Slack would redeliver it
        self._notify()
        if envelope.type == "events_api" and envelope.retry_attempt < self.max_retries:
            task = asyncio.create_task(self._redeliver_if_unacked(envelope, self.ack_deadline))
            self._tasks.add(task)
            task.add_done_callback(self._forget_task)
        return envelope

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._notify()

    @property
    def pending_redeliveries(self) -> int:
        """Envelopes still waiting out their ack deadline before a possible redelivery."""
        return len(self._tasks)

    async def _redeliver_if_unacked(self, envelope: Envelope, deadline: float) -> None:
        if await self._changes.until(lambda: envelope.acked, deadline):
            return
        body = copy.deepcopy(envelope.body)
        body["envelope_id"] = new_envelope_id()
        body["retry_attempt"] = envelope.retry_attempt + 1
        body["retry_reason"] = "timeout"
        await self._send(body, timeout=None)

    # -- interactivity --------------------------------------------------------------------

    async def _response_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.post())
        self.responses.append(ResponseUrlPost(request.path, body, time.monotonic()))
        self._notify()
        return web.json_response({"ok": True})

    # -- recording and waiting ------------------------------------------------------------

    def _record_call(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._notify()

    def notify(self) -> None:
        """Wake ``wait_for`` callers: for predicates over state the fake does not record."""
        self._notify()

    def _notify(self) -> None:
        self._changes.notify()

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 5.0, what: str | None = None
    ) -> T:
        """``predicate()``'s first truthy value, re-checked whenever the fake records anything.

        Raises ``AssertionError`` with ``summary()`` if it stays falsy for ``timeout`` seconds.
        """
        value = await self._changes.until(predicate, timeout)
        if not value:
            name = what or getattr(predicate, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout}s waiting for {name}\n{self.summary()}")
        return value

    def summary(self) -> str:
        """Everything recorded so far, one line each, for failure messages."""
        lines = [f"FakeSlack on {self.base_url if self._port else '(not started)'}:"]
        lines.append(f"  connections: {self.connections_opened} opened, connected={self.connected}")
        for call in self.calls:
            outcome = "ok" if call.ok else f"{call.status} {call.response.get('error', '')}"
            lines.append(f"  api {call.method} [{call.encoding}] -> {outcome} {short(call.args)}")
        for envelope in self.envelopes_sent:
            lines.append(f"  sent {envelope.describe()}")
        for ack in self.acks:
            known = "" if ack.envelope else " (unknown envelope)"
            lines.append(f"  ack {ack.envelope_id[:8]}{known} payload={short(ack.payload)}")
        for post in self.responses:
            lines.append(f"  response_url {post.path} {short(post.body)}")
        for frame in self.unexpected:
            lines.append(f"  unexpected frame {short(frame)}")
        return "\n".join(lines)


async def _close(ws: web.WebSocketResponse, code: int, message: bytes) -> None:
    # A client that is already gone cannot answer the close frame; nothing more to do then.
    with contextlib.suppress(TimeoutError, ConnectionError):
        await asyncio.wait_for(ws.close(code=code, message=message), CLOSE_TIMEOUT * 2)


__all__ = ["FakeSlack"]
