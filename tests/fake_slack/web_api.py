"""The Web API half of the fake Slack: ``/api/{method}``, as slack_sdk's clients call it."""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fake_slack.events import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, next_ts
from tests.fake_slack.records import ApiCall

APP_METHODS = frozenset({"apps.connections.open"})
JSON_ARGUMENTS = ("blocks", "attachments", "metadata")
BOT_SCOPES = "app_mentions:read,chat:write,im:history,im:read,im:write,users:read,users:read.email"


class ApiError(Exception):
    """Answer ``{"ok": false, "error": code}`` (HTTP 200, as Slack does)."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass(frozen=True)
class Fault:
    """An answer injected ahead of the real one: a 429 or an ``ok: false`` error."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


class WebApi:
    """Slack's Web API for the methods TechAssist uses, with tokens checked as Slack checks them."""

    def __init__(
        self,
        *,
        bot_token: str,
        app_token: str,
        bot_name: str,
        socket_url: Callable[[], str],
        record: Callable[[ApiCall], None],
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_name = bot_name
        self.users: dict[str, dict[str, Any]] = {}
        """``users.info`` directory: user id to the user object Slack would return."""
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        """Messages the bot posted, by ``(channel, ts)``; ``chat.update`` edits them here."""
        self.stubs: dict[str, dict[str, Any]] = {}
        self.faults: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self.validate_blocks = True
        self._socket_url = socket_url
        self._record = record

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        at = time.monotonic()
        status: int = 200
        headers: dict[str, str] = {}
        token: str | None = None
        args: dict[str, Any] = {}
        encoding = "query"
        try:
            args, encoding = await _arguments(request)
            token = _token(request, args)
            self._check_method_and_token(method, token)
            fault = self.faults[method].popleft() if self.faults.get(method) else None
            if fault is not None:
                status, body, headers = fault.status, fault.body, fault.headers
            elif method in self.stubs:
                body = dict(self.stubs[method])
            else:
                body = self._handlers[method](args)
                if method == "auth.test":
                    headers = {"X-OAuth-Scopes": BOT_SCOPES}
        except ApiError as error:
            body = {"ok": False, "error": error.code, **error.extra}
        self._record(ApiCall(method, args, token, status, body, at, encoding))
        return web.json_response(body, status=status, headers=headers)

    @property
    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "apps.connections.open": self._connections_open,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "users.info": self._users_info,
            "conversations.history": self._history,
        }

    def _check_method_and_token(self, method: str, token: str | None) -> None:
        if method not in self._handlers and method not in self.stubs:
            raise ApiError("unknown_method", req_method=method)
        if not token:
            raise ApiError("not_authed")
        wants_app_token = method in APP_METHODS
        if token.startswith("xapp-") != wants_app_token:
            raise ApiError("not_allowed_token_type")
        if token != (self.app_token if wants_app_token else self.bot_token):
            raise ApiError("invalid_auth")

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": self.bot_name,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self._socket_url()}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel", "channel_not_found")
        if not any(args.get(name) for name in ("text", "blocks", "attachments")):
            raise ApiError("no_text")
        self._check_blocks(args)
        ts = next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": str(args.get("text") or ""),
            "ts": ts,
        }
        for name in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(name):
                message[name] = args[name]
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": dict(message)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _required(args, "channel", "channel_not_found")
        ts = _required(args, "ts", "message_not_found")
        message = self.messages.get((channel, ts))
        if message is None:
            raise ApiError("message_not_found")
        if not any(args.get(name) for name in ("text", "blocks", "attachments")):
            raise ApiError("no_text")
        self._check_blocks(args)
        for name in ("text", "blocks", "attachments", "metadata"):
            if name in args:
                message[name] = args[name]
        message["edited"] = {"user": BOT_USER_ID, "ts": next_ts()}
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.get("text", ""),
            "message": dict(message),
        }

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The bot's own messages in a channel, newest first, as ``conversations.history``.

        ``latest``/``oldest`` bound the ``ts`` (exclusive unless ``inclusive``); thread
        replies are left out, as Slack does; ``metadata`` only with ``include_all_metadata``.
        """
        channel = _required(args, "channel", "channel_not_found")
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        latest = float(args["latest"]) if args.get("latest") else float("inf")
        oldest = float(args["oldest"]) if args.get("oldest") else 0.0
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")

        def within(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        found = [
            {k: v for k, v in message.items() if with_metadata or k != "metadata"}
            for (where, ts), message in self.messages.items()
            if where == channel and within(float(ts)) and message.get("thread_ts") in (None, ts)
        ]
        found.sort(key=lambda message: float(message["ts"]), reverse=True)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user", "")))
        if user is None:
            raise ApiError("user_not_found")
        return {"ok": True, "user": user}

    def _check_blocks(self, args: dict[str, Any]) -> None:
        if self.validate_blocks and "blocks" in args:
            errors = block_errors(args["blocks"])
            if errors:
                raise ApiError("invalid_blocks", errors=errors)


async def _arguments(request: web.Request) -> tuple[dict[str, Any], str]:
    """Query and body arguments merged, JSON-in-a-string arguments parsed, and the encoding."""
    args: dict[str, Any] = dict(request.query)
    encoding = "query"
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as error:
                raise ApiError("invalid_json") from error
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            encoding = "json"
        else:
            form = await request.post()
            body = {key: value for key, value in form.items() if isinstance(value, str)}
            encoding = "form"
        args.update(body)
    for name in JSON_ARGUMENTS:
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError as error:
                raise ApiError(f"invalid_{name}_format") from error
    return args, encoding


def _token(request: web.Request, args: dict[str, Any]) -> str | None:
    """The bearer token, or a legacy ``token`` argument (which is removed from ``args``)."""
    legacy = args.pop("token", None)
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return str(legacy) if legacy else None


def _required(args: dict[str, Any], name: str, error: str) -> str:
    value = args.get(name)
    if not value:
        raise ApiError(error)
    return str(value)


def block_errors(blocks: Any) -> list[str]:
    """The Block Kit limits Slack enforces that a renderer is likely to trip over."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > 50:
        errors.append("no more than 50 items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
        if block["type"] == "section":
            errors += _section_errors(block, where)
        elif block["type"] == "header":
            if len(_text_of(block.get("text"))) > 150:
                errors.append(f"must be less than 151 characters [json-pointer:{where}/text]")
        elif block["type"] == "actions":
            errors += _actions_errors(block, where)
        elif block["type"] == "context" and len(block.get("elements") or []) > 10:
            errors.append(f"no more than 10 items allowed [json-pointer:{where}/elements]")
    return errors


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _section_errors(block: dict[str, Any], where: str) -> list[str]:
    if block.get("text") is None and not block.get("fields"):
        return [f"must provide either text or fields [json-pointer:{where}]"]
    if len(_text_of(block.get("text"))) > 3000:
        return [f"must be less than 3001 characters [json-pointer:{where}/text/text]"]
    return []


def _actions_errors(block: dict[str, Any], where: str) -> list[str]:
    elements = block.get("elements") or []
    errors: list[str] = []
    if not elements or len(elements) > 25:
        errors.append(f"must have between 1 and 25 elements [json-pointer:{where}/elements]")
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        at = f"{where}/elements/{j}"
        action_id = element.get("action_id")
        if action_id is not None:
            if action_id in action_ids:
                errors.append(f"duplicate action_id [json-pointer:{at}/action_id]")
            action_ids.add(action_id)
            if len(str(action_id)) > 255:
                errors.append(f"must be less than 256 characters [json-pointer:{at}/action_id]")
        if element.get("type") == "button":
            text = element.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"must be a plain_text object [json-pointer:{at}/text]")
            elif len(_text_of(text)) > 75:
                errors.append(f"must be less than 76 characters [json-pointer:{at}/text/text]")
            if len(str(element.get("value", ""))) > 2000:
                errors.append(f"must be less than 2001 characters [json-pointer:{at}/value]")
    return errors
