"""The Slack bridge: technicians chat with TechAssist in Slack over Socket Mode.

It is the only module that imports ``slack_bolt`` or ``slack_sdk``. It only
translates: Slack events and button clicks become ``IncomingTurn`` objects,
and a turn's replies become one Slack message (Block Kit, with a plain-text
fallback). What it adds is what Slack itself demands:

- every envelope is acked at once (a catch-all listener acks what nothing else
  handles; bolt would leave it unacked and Slack would redeliver it), and the
  turn runs in the background, one at a time per session, in arrival order;
  turns start one per event-loop iteration, so a burst of them cannot hold up
  the acks of the envelopes that arrive behind it;
- a redelivered event (same ``event_id``, or same channel and ``ts``) produces
  replies once, even while its first delivery is still being processed, and a
  button's clicks answer once: the ids go through ``Seen``, which on a shared
  store is shared, so a delivery to another instance is recognised there too;
- one message per turn, since ``chat.postMessage`` allows about one per second
  per channel; a step that takes more than about a second first posts a
  progress line, which the turn's replies then replace;
- Web API errors: 429s wait out ``Retry-After`` (slack_sdk's retry handler);
  other failures are logged and the post is retried, and if it never goes
  through the replies are kept and shown first on the technician's next turn;
- a watchdog rebuilds the Socket Mode handler when it stays disconnected
  (slack_sdk's own reconnects can stop for good, retrying against a closed
  aiohttp session).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from orchestrator_core.dedupe import MemorySeen, Seen
from orchestrator_core.dispatch import Dispatch, DispatchError, Escalation
from orchestrator_core.errors import BridgeError, StoreError, TechAssistError, Unavailable
from orchestrator_core.orchestrator import UNAVAILABLE, Orchestrator
from orchestrator_core.turns import IncomingTurn, Reply, SessionKey, TurnKind

log = logging.getLogger("techassist.slack")

BRIDGE = "slack"
UNMAPPED = (
    "Hi! I don't know which technician you are yet. Ask your dispatcher to add your Slack "
    "account to TechAssist (your Slack user id is {user}), or make sure your Slack email "
    "matches the one in the technician directory."
)
SIGN_IN = (
    "Hi! I don't know which technician you are yet. Ask your dispatcher for a sign-in code, "
    "then send your CUID and the code in one message, like AB1234 123456. A code works once, "
    "for ten minutes. (Your Slack user id is {user}.)"
)
"""The one answer to an unmapped user's every message until a code signs them in."""
_SIGN_IN = re.compile(r"\s*([A-Za-z0-9]{2,16})\s+(\d{6})\s*")
#: Slack limits: a section's text, fields per section, buttons per actions block.
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_BUTTONS = 25
MAX_BLOCKS = 50
_MENTION = re.compile(r"<@[A-Z0-9]+>\s*")
#: How many threads, dispatch-channel posts and operator names an instance remembers.
REMEMBERED = 10_000


class _SameToken(logging.Filter):
    """Drops bolt's warning that ``SLACK_BOT_TOKEN`` goes unused beside our client.

    ``AsyncApp`` reads that variable on its own, and ``techassist serve`` reads the
    token from it too, so the client it warns about carries that very token.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("As you gave `client` as well")


_BOLT_LOG = logging.getLogger("techassist.slack.bolt")
_BOLT_LOG.addFilter(_SameToken())


@dataclass(frozen=True)
class SlackConfig:
    """What the bridge needs to connect; built by ``bot`` from the settings."""

    bot_token: str
    app_token: str
    api_url: str | None = None
    """The Web API base URL (``https://slack.com/api/`` when unset)."""
    self_identify: bool = False
    """Let an unmapped user sign in with their CUID and a one-time code."""
    progress_after: float = 1.0
    """Seconds a turn may run before a progress line is posted."""
    ping_interval: float = 10.0
    """Seconds between Socket Mode pings; a dead socket is noticed after about this long."""
    watchdog_interval: float = 5.0
    """How often the watchdog checks the connection."""
    rebuild_after: float = 30.0
    """Seconds disconnected after which the watchdog rebuilds the handler."""
    post_retries: int = 3
    """Extra tries of a failed post (429s are retried separately, after Retry-After)."""
    post_backoff: float = 0.5
    seen_ttl: float = 3600.0
    """Seconds an event id, a message or a clicked button is remembered as processed
    (Slack redelivers for about five minutes)."""
    dispatch_channel: str | None = None
    """The channel id where new escalations are posted with a Take button; None: nowhere."""


# ---------------------------------------------------------------------- translation


def session_key(team: str, channel: str, user: str) -> SessionKey:
    """The session key of a Slack conversation."""
    return SessionKey(BRIDGE, team, channel, user)


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fields(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A flat dict as Block Kit section fields (the first ten)."""
    fields = []
    for key, value in data.items():
        if isinstance(value, dict | list) or value is None:
            continue
        label = str(key).replace("_", " ").capitalize()
        fields.append({"type": "mrkdwn", "text": f"*{escape(label)}*\n{escape(str(value))}"})
    return fields[:MAX_FIELDS]


def render(replies: list[Reply]) -> tuple[str, list[dict[str, Any]]]:
    """One turn's replies as a Slack message: the fallback text and the blocks.

    Each reply is a section; an order or a tool's result becomes fields; the
    last reply's choices become buttons whose value is the answer itself.
    """
    blocks: list[dict[str, Any]] = []
    for reply in replies:
        source = notice_source(reply)
        if source:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": source}]})
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": escape(reply.text)[:MAX_SECTION]},
            }
        )
        data = reply.data or {}
        for name in ("order", "result"):
            card = data.get(name)
            if isinstance(card, dict) and (fields := _fields(card)):
                blocks.append({"type": "section", "fields": fields})
    if len(blocks) >= MAX_BLOCKS:
        # Many notices at once: their texts as plain sections, as many as fit.
        whole = escape("\n".join(r.text for r in replies))
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": whole[i : i + MAX_SECTION]}}
            for i in range(0, len(whole), MAX_SECTION)
        ][: MAX_BLOCKS - 1]
    choices = replies[-1].choices if replies else []
    if choices:
        blocks.append(
            {
                "type": "actions",
                "block_id": "choices",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": choice[:75]},
                        "value": choice,
                        "action_id": f"choice_{i}",
                    }
                    for i, choice in enumerate(choices[:MAX_BUTTONS])
                ],
            }
        )
    text = "\n".join(r.text for r in replies) or " "
    return text[:40000], blocks


NOTICE_SOURCES = {
    "answer": "Message from dispatch",
    "handback": "Handed back by dispatch",
    "cancelled": "Cancelled by dispatch",
    "reminder": "Reminder",
    "info": "Notice",
}


def notice_source(reply: Reply) -> str | None:
    """The context line above a message nobody asked for: who sent it and what about."""
    data = reply.data or {}
    kind = data.get("notice")
    if not isinstance(kind, str):
        return None
    parts = [NOTICE_SOURCES.get(kind, "Notice")]
    for name in ("operator", "escalation_id", "order_id"):
        value = data.get(name)
        if isinstance(value, str) and value:
            parts.append(escape(value))
    return " · ".join(parts)


def answered(blocks: list[dict[str, Any]], choice: str) -> list[dict[str, Any]]:
    """A clicked message's blocks without its buttons, saying what was chosen."""
    kept = [b for b in blocks if b.get("type") != "actions"]
    note = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"✔ {escape(choice)}"}]}
    return [*kept, note]


# ---------------------------------------------------------------------- the dispatch channel

TAKE = "escalation_take"
"""The action id of an escalation post's Take button; its value is the escalation id."""
ESCALATION_EVENT = "techassist_escalation"
"""The message metadata event type that names the escalation a dispatch-channel post is about."""
ESCALATION_BLOCK = "escalation:"
"""The block id prefix that names it too, for a post whose metadata was stripped."""


def _shown(value: Any) -> str | None:
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def escalation_summary(escalation: Escalation) -> tuple[str, list[dict[str, Any]]]:
    """An escalation as the dispatch channel shows it: a headline and its fields.

    The parameters come from the dispatch desk with sensitive values already masked.
    """
    ident, order, cuid = escalation.id, escalation.order_id, escalation.cuid
    headline = f"Escalation {ident}: {cuid}" + (f" on {order}" if order else " needs help")
    step, of = escalation.step, escalation.of
    where = f"{step} of {of}" if step is not None and of is not None else None
    if where is not None and escalation.step_id:
        where = f"{where} ({escalation.step_id})"
    fields = {
        "Technician": cuid,
        "Order": order,
        "Kind": escalation.kind,
        "Step": where,
        "Their words": escalation.words,
        "Parameters so far": escalation.params,
    }
    shown = [
        {"type": "mrkdwn", "text": f"*{name}*\n{escape(text)[:1900]}"}
        for name, value in fields.items()
        if (text := _shown(value)) is not None
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "block_id": f"{ESCALATION_BLOCK}{ident}"[:255],
            "text": {"type": "mrkdwn", "text": f"*{escape(headline)}*"[:MAX_SECTION]},
        }
    ]
    if shown:
        blocks.append({"type": "section", "fields": shown[:MAX_FIELDS]})
    return headline, blocks


def escalation_post(
    escalation: Escalation,
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """A new escalation's post: text, blocks with a Take button, and the metadata naming it."""
    headline, blocks = escalation_summary(escalation)
    ident = escalation.id
    blocks.append(
        {
            "type": "actions",
            "block_id": "take",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Take"},
                    "style": "primary",
                    "value": ident,
                    "action_id": TAKE,
                }
            ],
        }
    )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "Take it, then reply in this thread."}],
        }
    )
    metadata = {"event_type": ESCALATION_EVENT, "event_payload": {"escalation_id": ident}}
    return f"{headline} (take it, then reply in this thread)", blocks, metadata


def escalation_taken(escalation: Escalation, operator: str) -> tuple[str, list[dict[str, Any]]]:
    """The post once taken: no Take button, and who took it."""
    headline, blocks = escalation_summary(escalation)
    note = f"Taken by {escape(operator)}. A reply in this thread reaches the technician."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return f"{headline} (taken by {operator})", blocks


def escalation_named(message: dict[str, Any]) -> str | None:
    """The escalation id a dispatch-channel post names: its metadata, else its block ids."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") == ESCALATION_EVENT:
        ident = (metadata.get("event_payload") or {}).get("escalation_id")
        if isinstance(ident, str) and ident:
            return ident
    for block in message.get("blocks") or []:
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str) and block_id.startswith(ESCALATION_BLOCK):
            return block_id.removeprefix(ESCALATION_BLOCK) or None
    return None


_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]+))?>")


def plain(text: str) -> str:
    """A person's Slack message as they typed it: mentions dropped, links and escapes undone."""
    text = _MENTION.sub("", text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def is_technician_message(event: dict[str, Any], bot_user: str | None) -> bool:
    """Whether an event is a person typing to us: not a bot, not an edit or deletion."""
    if event.get("subtype") is not None or event.get("bot_id"):
        return False
    return bool(event.get("user")) and event.get("user") != bot_user


# ---------------------------------------------------------------------- plumbing


class _Lanes:
    """One lane per session: its jobs run one at a time, in the order they came.

    Across lanes, jobs start in the order they reach the head of their lane, at
    most one per event-loop iteration. A turn does most of its work before its
    first real wait (the session, the plan, the store, the Web API request), so
    a burst of envelopes would otherwise start a burst of turns that run back to
    back in one iteration, while the envelopes behind them wait on the socket
    for their acks. Between two starts the loop reads the socket and acks.
    """

    def __init__(self) -> None:
        self._tails: dict[SessionKey, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._admissions: deque[asyncio.Future[None]] = deque()
        self._gate: asyncio.Task[None] | None = None

    def submit(self, key: SessionKey, job: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        previous = self._tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own business
            try:
                await self._admit()
                await job()
            except Exception:
                log.exception("a Slack turn failed for %s", key.as_str())
            finally:
                if self._tails.get(key) is task:
                    del self._tails[key]

        task = asyncio.create_task(run())
        self._tails[key] = task
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _admit(self) -> None:
        """Wait until this job may start: one start per event-loop iteration."""
        waiter = asyncio.get_running_loop().create_future()
        self._admissions.append(waiter)
        if self._gate is None or self._gate.done():
            self._gate = asyncio.create_task(self._open_gate())
        await waiter

    async def _open_gate(self) -> None:
        while self._admissions:
            waiter = self._admissions.popleft()
            if not waiter.done():  # a cancelled job is skipped
                waiter.set_result(None)
                await asyncio.sleep(0)  # one loop iteration, with its socket reads, per start

    async def drain(self, timeout: float) -> None:
        """Wait for the jobs under way, then cancel what is left."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout)
            for task in pending:
                task.cancel()
        if self._gate is not None:
            self._gate.cancel()
            await asyncio.gather(self._gate, return_exceptions=True)


# ---------------------------------------------------------------------- the bridge


class SlackBridge:
    """Connects one Slack app to one orchestrator over Socket Mode."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        config: SlackConfig,
        redeem: Callable[[str, str], Awaitable[str | None]] | None = None,
        seen: Seen | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        """``redeem(cuid, code)`` uses a one-time code: the CUID it signs in, or None.

        ``seen`` holds the processed ids; pass the one built with the session
        store, so instances on a shared store share it (default: this process's).
        ``dispatch`` is the escalations desk: with ``config.dispatch_channel`` set,
        new escalations are posted there, Take takes one and a thread reply answers it.
        """
        self.orchestrator = orchestrator
        self.config = config
        self.redeem = redeem
        self.handler: AsyncSocketModeHandler | None = None
        self.bot_user: str | None = None
        self._seen: Seen = seen if seen is not None else MemorySeen()
        self._lanes = _Lanes()
        self._identities: dict[str, tuple[str | None, float]] = {}
        self._watchdog: asyncio.Task[None] | None = None
        self._disconnected_since: float | None = None
        self.dispatch = dispatch if config.dispatch_channel else None
        self._threads: dict[SessionKey, str] = {}
        """The thread each channel conversation last spoke in, for messages nobody asked for."""
        self._escalations: dict[tuple[str, str], str] = {}
        """Dispatch-channel posts seen here: (channel, ts) to escalation id."""
        self._names: dict[str, str] = {}
        self._posting: set[asyncio.Task[None]] = set()
        if self.dispatch is not None:
            self.dispatch.subscribe(self._on_escalation)

    # -- lifecycle

    async def start(self) -> None:
        """Connect to Slack and start the watchdog; raise BridgeError if Slack refuses."""
        self.handler = self._build()
        try:
            auth = await self.handler.app.client.auth_test()
            self.bot_user = auth.get("user_id")
            await self.handler.connect_async()  # type: ignore[no-untyped-call]
        except (SlackApiError, aiohttp.ClientError, OSError) as exc:
            await self._close_handler(self.handler)
            raise BridgeError(f"cannot connect to Slack: {_describe(exc)}") from exc
        self._watchdog = asyncio.create_task(self._watch())
        log.info("connected to Slack over Socket Mode as %s", self.bot_user)
        if self.dispatch is not None:
            log.info("new escalations go to Slack channel %s", self.config.dispatch_channel)
        pending = asyncio.create_task(self._deliver_pending())
        self._posting.add(pending)
        pending.add_done_callback(self._posting.discard)

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self._posting:
            await asyncio.wait(set(self._posting), timeout=5.0)
        await self._lanes.drain(timeout=5.0)
        if self.handler is not None:
            await self._close_handler(self.handler)
            self.handler = None

    async def connected(self) -> bool:
        """Whether the Socket Mode connection is up right now."""
        return self.handler is not None and await self.handler.client.is_connected()

    def _build(self) -> AsyncSocketModeHandler:
        client = AsyncWebClient(
            token=self.config.bot_token,
            base_url=self.config.api_url or AsyncWebClient.BASE_URL,
            # One pooled HTTP session: without it slack_sdk opens a new connection (and
            # against slack.com a new TLS handshake) for every Web API call.
            session=aiohttp.ClientSession(),
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=3)],
        )
        app = AsyncApp(
            client=client,
            logger=_BOLT_LOG,
            # The listeners only queue work, so bolt may run them before it answers:
            # the ack then goes out in the same step, and a button click's ack no
            # longer waits for bolt's 10 ms poll of a listener running in a task.
            process_before_response=True,
        )
        app.event("message")(self._on_message)
        app.event("app_mention")(self._on_mention)
        app.action(re.compile(".*"))(self._on_action)
        # Catch-alls: bolt leaves what no listener matches unacked, and Slack would
        # then redeliver it three times.
        app.event(re.compile(".*"))(self._ignore)
        app.shortcut(re.compile(".*"))(self._ignore)
        app.view(re.compile(".*"))(self._ignore)
        app.options(re.compile(".*"))(self._ignore)
        app.command(re.compile(".*"))(self._ignore)
        return AsyncSocketModeHandler(
            app, self.config.app_token, web_client=client, ping_interval=self.config.ping_interval
        )

    async def _close_handler(self, handler: AsyncSocketModeHandler) -> None:
        try:
            await handler.close_async()  # type: ignore[no-untyped-call]
        except Exception:  # closing a broken client must not stop a shutdown or a rebuild
            log.warning("closing the Socket Mode handler failed", exc_info=True)
        session = getattr(handler.app.client, "session", None)
        if session is not None and not session.closed:
            await session.close()

    async def _watch(self) -> None:
        """Rebuild the handler when it stays disconnected; its own reconnects can get stuck."""
        while True:
            await asyncio.sleep(self.config.watchdog_interval)
            if await self.connected():
                self._disconnected_since = None
                continue
            now = time.monotonic()
            if self._disconnected_since is None:
                self._disconnected_since = now
                log.warning("Slack Socket Mode is disconnected")
            if now - self._disconnected_since >= self.config.rebuild_after:
                await self._rebuild()

    async def _rebuild(self) -> None:
        log.warning("rebuilding the Slack Socket Mode handler after a long disconnect")
        old, self.handler = self.handler, self._build()
        if old is not None:
            await self._close_handler(old)
        try:
            await self.handler.connect_async()  # type: ignore[no-untyped-call]
            self._disconnected_since = None
        except (SlackApiError, aiohttp.ClientError, OSError) as exc:
            log.warning("reconnecting to Slack failed: %s", _describe(exc))

    # -- listeners: they only queue work, so bolt acks at once

    async def _ignore(self, ack: Callable[[], Awaitable[Any]]) -> None:
        await ack()

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if not is_technician_message(event, self.bot_user):
            return
        if self._in_dispatch_channel(event):
            self._queue_dispatch_reply(event, body)
        elif event.get("channel_type") == "im":
            self._queue_message(event, body, thread_ts=None)

    async def _on_mention(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if not is_technician_message(event, self.bot_user) or self._in_dispatch_channel(event):
            return  # a mention in the dispatch channel is an operator's, taken as a message
        self._queue_message(event, body, thread_ts=event.get("thread_ts") or event.get("ts"))

    def _thread(self, key: SessionKey, thread_ts: str) -> None:
        """Remember where a channel conversation speaks, for its notices."""
        self._threads.pop(key, None)
        self._threads[key] = thread_ts  # the most recent last
        while len(self._threads) > REMEMBERED:
            del self._threads[next(iter(self._threads))]

    def _in_dispatch_channel(self, event: dict[str, Any]) -> bool:
        channel = self.config.dispatch_channel
        return self.dispatch is not None and bool(channel) and event.get("channel") == channel

    def _queue_message(
        self, event: dict[str, Any], body: dict[str, Any], thread_ts: str | None
    ) -> None:
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        ids = [f"ts:{channel}:{ts}"]
        if body.get("event_id"):
            ids.append(f"event:{body['event_id']}")
        team = str(body.get("team_id") or event.get("team") or "")
        user = str(event["user"])
        text = _MENTION.sub("", str(event.get("text", ""))).strip()
        key = session_key(team, channel, user)
        turn_id = f"{channel}:{ts}"
        if thread_ts:
            self._thread(key, str(thread_ts))

        async def job() -> None:
            # Checked in the session's lane, so the turns keep their arrival order.
            if not await self._first(ids):
                log.info("ignored a redelivered Slack event %s", body.get("event_id"))
                return
            await self._run_turn(key, user, text, TurnKind.MESSAGE, turn_id, thread_ts)

        self._lanes.submit(key, job)

    async def _on_action(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        message = body.get("message") or {}
        message_ts = str(container.get("message_ts") or message.get("ts") or "")
        user = str((body.get("user") or {}).get("id", ""))
        value = action.get("value")
        if not (channel and message_ts and user and isinstance(value, str)):
            return
        if action.get("action_id") == TAKE:
            self._queue_take(body, channel, message_ts, user, value)
            return
        if self.dispatch is not None and channel == self.config.dispatch_channel:
            return  # no technician converses in the dispatch channel
        click = f"click:{channel}:{message_ts}"
        team = str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id"))
        key = session_key(team, channel, user)
        thread_ts = message.get("thread_ts")
        if thread_ts:
            self._thread(key, str(thread_ts))

        async def job() -> None:
            if not await self._first([click]):
                return  # the buttons of a message answer once
            blocks = answered(message.get("blocks") or [], value)
            await self._send(key, channel, None, message.get("text") or value, blocks, message_ts)
            await self._run_turn(key, user, value, TurnKind.ACTION, click, thread_ts)

        self._lanes.submit(key, job)

    async def _first(self, ids: list[str]) -> bool:
        """Whether these ids are new here and, on a shared store, on every instance."""
        try:
            return await self._seen.first(ids[0], self.config.seen_ttl, also=ids[1:])
        except StoreError as exc:
            # The turn still runs: a repeated message id is answered from the stored replies.
            log.warning("cannot check for a redelivered Slack event: %s", exc)
            return True

    # -- messages nobody asked for: a dispatcher's answer, a hand-back, a reminder

    async def deliver(self, key: SessionKey) -> None:
        """Post what the core holds for ``key`` where its conversation lives, once.

        Called when the notifier says a Slack conversation has notices. It runs in
        the conversation's lane, after any turn under way (which shows them itself),
        and ``take_notices`` hands each notice out once, so two calls that race post
        it once. A direct message gets a message, a channel conversation a reply in
        the thread it last spoke in (or, from another instance, a message that
        mentions the technician).

        It returns once the delivery is queued: the notifier hands every bridge its
        keys one after another, so it must not wait behind a slow Slack turn.
        """
        if key.bridge != BRIDGE:
            return
        self._lanes.submit(key, lambda: self._deliver_now(key))

    async def _deliver_pending(self, limit: int = 1000) -> None:
        """At start, post the notices that waited while no instance was connected to Slack.

        Their hint may have gone to no one. Every instance that starts looks; each
        notice is still handed out once.
        """
        try:
            sessions = await self.orchestrator.sessions.summaries(limit)
        except TechAssistError as exc:
            log.warning("cannot look for notices waiting for Slack: %s", exc)
            return
        for session in sessions:
            if session.key.bridge == BRIDGE and session.outbox:
                await self.deliver(session.key)

    async def _deliver_now(self, key: SessionKey) -> None:
        try:
            notices = await self.orchestrator.take_notices(key)
        except TechAssistError as exc:
            log.warning("cannot take the notices for %s: %s", key.as_str(), exc)
            return
        if not notices:
            return
        replies = [notice.as_reply() for notice in notices]
        text, blocks = render(replies)
        thread = None if key.channel.startswith("D") else self._threads.get(key)
        if thread is None and not key.channel.startswith("D"):
            mention = f"<@{key.user}>"
            text = f"{mention} {text}"
            blocks = [
                {"type": "section", "text": {"type": "mrkdwn", "text": mention}},
                *blocks,
            ]
        if await self._send(key, key.channel, thread, text, blocks, None) is None:
            # Put back: they come first on the technician's next message, once.
            await self.orchestrator.keep_notices(key, notices)
        else:
            log.info("posted %d notice(s) to %s", len(notices), key.as_str())

    # -- the dispatch channel: new escalations, Take, answers in threads

    async def _on_escalation(self, escalation: Escalation) -> None:
        """A new escalation: post it in the dispatch channel, in the background.

        It is called from the technician's turn, which must not wait for Slack.
        """
        task = asyncio.create_task(self._post_escalation(escalation))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)

    async def _post_escalation(self, escalation: Escalation) -> None:
        channel = self.config.dispatch_channel
        if channel is None:
            return
        text, blocks, metadata = escalation_post(escalation)
        for attempt in range(1 + self.config.post_retries):
            handler = self.handler
            if handler is None:
                break
            try:
                response = await handler.app.client.chat_postMessage(
                    channel=channel, text=text, blocks=blocks, metadata=metadata
                )
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning(
                    "posting escalation %s to the dispatch channel failed (try %d): %s",
                    escalation.id,
                    attempt + 1,
                    _describe(exc),
                )
                await asyncio.sleep(self.config.post_backoff * 2**attempt)
                continue
            self._remember_post(channel, str(response.get("ts") or ""), escalation.id)
            log.info("posted escalation %s to the dispatch channel", escalation.id)
            return
        log.error("escalation %s could not be posted to the dispatch channel", escalation.id)

    def _queue_take(
        self, body: dict[str, Any], channel: str, message_ts: str, user: str, ident: str
    ) -> None:
        action = (body.get("actions") or [{}])[0]
        click = f"take:{channel}:{message_ts}:{user}:{action.get('action_ts', '')}"
        team = str((body.get("team") or {}).get("id") or "")
        lane = SessionKey(BRIDGE, team, channel, message_ts)

        async def job() -> None:
            if self.dispatch is None or not await self._first([click]):
                return
            operator = await self._operator(user)
            try:
                escalation = await self.dispatch.take(ident, operator)
            except Exception as exc:
                await self._refused(lane, channel, message_ts, ident, exc)
                return
            self._remember_post(channel, message_ts, ident)
            text, blocks = escalation_taken(escalation, operator)
            await self._send(lane, channel, None, text, blocks, message_ts)
            log.info("escalation %s taken in Slack by %s", ident, operator)

        self._lanes.submit(lane, job)

    def _queue_dispatch_reply(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        thread_ts, ts = event.get("thread_ts"), str(event.get("ts", ""))
        if not thread_ts or thread_ts == ts:
            return  # a top-level message in the channel: people talking, not an answer
        channel, thread_ts = str(event.get("channel", "")), str(thread_ts)
        ids = [f"ts:{channel}:{ts}"]
        if body.get("event_id"):
            ids.append(f"event:{body['event_id']}")
        team = str(body.get("team_id") or event.get("team") or "")
        user = str(event["user"])
        text = plain(str(event.get("text", "")))
        lane = SessionKey(BRIDGE, team, channel, thread_ts)

        async def job() -> None:
            if self.dispatch is None or not text or not await self._first(ids):
                return
            ident = await self._escalation_of(channel, thread_ts)
            if ident is None:
                return  # a thread under some other message
            operator = await self._operator(user)
            try:
                current = await self.dispatch.get(ident)
                if current.status == "open":
                    await self.dispatch.take(ident, operator)
                escalation = await self.dispatch.answer(ident, operator, text)
            except Exception as exc:
                await self._refused(lane, channel, thread_ts, ident, exc)
                return
            who = escalation.cuid
            await self._send(lane, channel, thread_ts, f"Sent to {who}.", None, None)
            log.info("escalation %s answered in Slack by %s", ident, operator)

        self._lanes.submit(lane, job)

    async def _refused(
        self, lane: SessionKey, channel: str, thread_ts: str, ident: str, exc: Exception
    ) -> None:
        """Tell the dispatch channel, in the escalation's thread, why an action did nothing."""
        if isinstance(exc, DispatchError):
            reason = str(exc)
            log.info("a Slack action on escalation %s was refused: %s", ident, reason)
        elif isinstance(exc, TechAssistError):
            log.warning("a Slack action on escalation %s failed: %s", ident, exc)
            reason = "The escalations cannot be reached right now; try again in a moment."
        else:
            log.exception("a Slack action on escalation %s failed", ident)
            reason = "That did not go through; try again in a moment."
        await self._send(lane, channel, thread_ts, f"{ident}: {reason}", None, None)

    async def _escalation_of(self, channel: str, ts: str) -> str | None:
        """The escalation a dispatch-channel post is about: known here, else read from Slack."""
        known = self._escalations.get((channel, ts))
        if known is not None:
            return known
        handler = self.handler
        if handler is None:
            return None
        try:
            response = await handler.app.client.conversations_history(
                channel=channel, latest=ts, inclusive=True, limit=1, include_all_metadata=True
            )
        except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("cannot read the dispatch-channel post %s: %s", ts, _describe(exc))
            return None
        for message in response.get("messages") or []:
            if str(message.get("ts")) == ts and (ident := escalation_named(message)):
                self._remember_post(channel, ts, ident)
                return ident
        return None

    def _remember_post(self, channel: str, ts: str, ident: str) -> None:
        if len(self._escalations) >= REMEMBERED:
            self._escalations.clear()  # only a shortcut: Slack still has the metadata
        self._escalations[(channel, ts)] = ident

    async def _operator(self, user: str) -> str:
        """An operator's name as Slack shows it (display name, else real name), else the id."""
        known = self._names.get(user)
        if known is not None:
            return known
        handler = self.handler
        name = user
        if handler is not None:
            try:
                info = await handler.app.client.users_info(user=user)
                person = info.get("user") or {}
                profile = person.get("profile") or {}
                for candidate in (
                    profile.get("display_name"),
                    profile.get("real_name"),
                    person.get("real_name"),
                    person.get("name"),
                ):
                    if isinstance(candidate, str) and candidate.strip():
                        name = candidate.strip()[:64]
                        break
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("users.info failed for %s: %s", user, _describe(exc))
                return user  # not remembered: the name may be readable next time
        if len(self._names) >= REMEMBERED:
            self._names.clear()
        self._names[user] = name
        return name

    # -- a turn

    async def _run_turn(
        self,
        key: SessionKey,
        user: str,
        text: str,
        kind: TurnKind,
        message_id: str,
        thread_ts: str | None,
    ) -> None:
        try:
            cuid = await self._technician(user)
            if cuid is None and not (self.config.self_identify and self.redeem is not None):
                await self._send(
                    key, key.channel, thread_ts, UNMAPPED.format(user=user), None, None
                )
                return
            if cuid is None and await self.orchestrator.identified_as(key) is None:
                cuid = await self._sign_in(text)
                if cuid is None:
                    # Every failure gets this one answer, so nothing tells which CUIDs exist.
                    await self._send(
                        key, key.channel, thread_ts, SIGN_IN.format(user=user), None, None
                    )
                    return
                log.info("a Slack user signed in with a one-time code as %s", cuid)
        except Unavailable as exc:
            # The directory is down or restarting: not "you are not mapped", but "send again".
            log.warning("cannot tell who Slack user %s is: %s", user, exc)
            await self._send(key, key.channel, thread_ts, UNAVAILABLE, None, None)
            return
        progress_ts: list[str] = []
        progress_line: list[str] = []
        done = asyncio.Event()

        async def progress(line: str) -> None:
            progress_line[:] = [line]

        async def announce() -> None:
            # Post the latest progress line if the turn is still running after a while.
            try:
                await asyncio.wait_for(done.wait(), self.config.progress_after)
            except TimeoutError:
                line = progress_line[0] if progress_line else "Working on it…"
                ts = await self._send(key, key.channel, thread_ts, line, None, None)
                if ts:
                    progress_ts.append(ts)

        announcer = asyncio.create_task(announce())
        turn = IncomingTurn(key, text=text, kind=kind, message_id=message_id, cuid=cuid)
        try:
            outcome = await self.orchestrator.handle_turn(turn, progress=progress)
        finally:
            done.set()
            await announcer
        if outcome.replayed:
            return  # answered before: a redelivery must not post twice
        text_out, blocks = render(outcome.replies)
        update = progress_ts[0] if progress_ts else None
        if await self._send(key, key.channel, thread_ts, text_out, blocks, update) is None:
            await self.orchestrator.undelivered(key, outcome.replies)

    async def _sign_in(self, text: str) -> str | None:
        """The CUID a ``CUID CODE`` message signs in with, or None."""
        match = _SIGN_IN.fullmatch(text)
        if match is None or self.redeem is None:
            return None
        return await self.redeem(match.group(1), match.group(2))

    async def _technician(self, user: str) -> str | None:
        """The CUID of a Slack user: by the directory's Slack id, else by their email."""
        cached = self._identities.get(user)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        cuid = await self.orchestrator.technician_for(slack_user_id=user)
        if cuid is None:
            email = await self._email(user)
            if email:
                cuid = await self.orchestrator.technician_for(email=email)
        # Remember a miss only briefly, so a newly mapped technician is let in soon.
        self._identities[user] = (cuid, time.monotonic() + (600 if cuid else 30))
        return cuid

    async def _email(self, user: str) -> str | None:
        assert self.handler is not None
        try:
            info = await self.handler.app.client.users_info(user=user)
        except (SlackApiError, aiohttp.ClientError, OSError) as exc:
            log.warning("users.info failed for %s: %s", user, _describe(exc))
            return None
        profile = (info.get("user") or {}).get("profile") or {}
        email = profile.get("email")
        return str(email) if email else None

    async def _send(
        self,
        key: SessionKey,
        channel: str,
        thread_ts: str | None,
        text: str,
        blocks: list[dict[str, Any]] | None,
        update_ts: str | None,
    ) -> str | None:
        """Post (or update) one message, retrying failures; its ts, or None if it never went."""
        for attempt in range(1 + self.config.post_retries):
            handler = self.handler
            if handler is None:
                return None
            client = handler.app.client
            try:
                if update_ts is not None:
                    response = await client.chat_update(
                        channel=channel, ts=update_ts, text=text, blocks=blocks or []
                    )
                else:
                    response = await client.chat_postMessage(
                        channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
                    )
                return str(response.get("ts") or update_ts or "")
            except (SlackApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning(
                    "posting to Slack for %s failed (try %d): %s",
                    key.as_str(),
                    attempt + 1,
                    _describe(exc),
                )
            await asyncio.sleep(self.config.post_backoff * 2**attempt)
        return None


def _describe(exc: BaseException) -> str:
    """An error in a few words, never with a token in it."""
    if isinstance(exc, SlackApiError):
        return f"Slack API error {exc.response.get('error')!r} (HTTP {exc.response.status_code})"
    return f"{type(exc).__name__}: {exc}"
