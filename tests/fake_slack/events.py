"""Build Slack payloads the way Slack shapes them: events, envelopes, ids and timestamps.

Everything here is a pure function of its arguments plus two process-wide counters, so a
``ts`` or ``event_id`` is never handed out twice in one test run, and later ones sort after
earlier ones, as Slack's do.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

TEAM_ID = "T1"
APP_ID = "A1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"

_TS_BASE_MICROS = 1_700_000_000 * 1_000_000
_ts_counter = itertools.count(1)
_event_counter = itertools.count(1)


def next_ts() -> str:
    """A fresh message timestamp, ``"1700000000.000100"`` then ``".000200"`` and so on."""
    micros = _TS_BASE_MICROS + 100 * next(_ts_counter)
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def next_event_id() -> str:
    """A fresh Events API id shaped like Slack's (``Ev`` and ten characters)."""
    return f"Ev{next(_event_counter):010d}"


def new_envelope_id() -> str:
    return str(uuid.uuid4())


def _rich_text(text: str) -> list[dict[str, Any]]:
    """The ``blocks`` Slack attaches to a message a person typed."""
    return [
        {
            "type": "rich_text",
            "block_id": "rt1",
            "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
            ],
        }
    ]


def message(
    user: str,
    text: str,
    *,
    channel: str,
    channel_type: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    team_id: str = TEAM_ID,
    **extra: Any,
) -> dict[str, Any]:
    """A ``message`` event typed by a person; ``extra`` keys are added as they are."""
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "team": team_id,
        "client_msg_id": str(uuid.uuid4()),
        "blocks": _rich_text(text),
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def message_im(
    user: str, text: str, channel: str = "D1", ts: str | None = None, thread_ts: str | None = None
) -> dict[str, Any]:
    """A direct message to the bot (``channel_type`` ``"im"``)."""
    return message(user, text, channel=channel, channel_type="im", ts=ts, thread_ts=thread_ts)


def app_mention(
    user: str, text: str, channel: str = "C1", ts: str | None = None, thread_ts: str | None = None
) -> dict[str, Any]:
    """An ``app_mention`` event; ``text`` is raw, so include ``<@UBOT>`` as Slack would."""
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": channel,
        "team": TEAM_ID,
        "client_msg_id": str(uuid.uuid4()),
        "blocks": _rich_text(text),
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def bot_message(
    text: str,
    *,
    channel: str = "D1",
    channel_type: str = "im",
    bot_id: str = BOT_ID,
    user: str | None = BOT_USER_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """A message posted by a bot: by default our own post echoed back (``bot_id`` BBOT).

    Modern apps' posts carry ``bot_id`` and ``user`` with no subtype; pass ``user=None`` for the
    legacy ``bot_message`` subtype that integrations and webhooks produce.
    """
    ts = ts or next_ts()
    event: dict[str, Any] = {
        "type": "message",
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "bot_id": bot_id,
        "app_id": APP_ID,
        "bot_profile": {"id": bot_id, "app_id": APP_ID, "name": "techassist", "team_id": TEAM_ID},
    }
    if user is None:
        event["subtype"] = "bot_message"
    else:
        event["user"] = user
        event["team"] = TEAM_ID
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    return event


def message_changed(
    user: str,
    ts: str,
    text: str,
    *,
    previous_text: str = "",
    channel: str = "D1",
    channel_type: str = "im",
) -> dict[str, Any]:
    """The ``message_changed`` subtype Slack sends when message ``ts`` is edited to ``text``."""
    event_ts = next_ts()
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": channel,
        "channel_type": channel_type,
        "ts": event_ts,
        "event_ts": event_ts,
        "message": {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "edited": {"user": user, "ts": event_ts},
            "blocks": _rich_text(text),
        },
        "previous_message": {"type": "message", "user": user, "text": previous_text, "ts": ts},
    }


def events_api_envelope(
    event: dict[str, Any],
    *,
    event_id: str,
    team_id: str = TEAM_ID,
    retry_attempt: int = 0,
    retry_reason: str = "",
    envelope_id: str | None = None,
) -> dict[str, Any]:
    """Wrap ``event`` in the Socket Mode ``events_api`` envelope, as Slack does."""
    return {
        "envelope_id": envelope_id or new_envelope_id(),
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": retry_attempt,
        "retry_reason": retry_reason,
        "payload": {
            "token": "x",
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-fake-{event_id}",
        },
    }


def block_actions(
    user: str,
    value: str,
    *,
    channel: str,
    message: dict[str, Any],
    action_id: str,
    block_id: str,
    response_url: str,
    button_text: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """The ``block_actions`` payload of a button press on ``message`` in ``channel``."""
    name = user.lower()
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": "x",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{next(_event_counter)}.1.fake-trigger",
        "team": {"id": team_id, "domain": "fake"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else channel},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": button_text or value, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def interactive_envelope(payload: dict[str, Any]) -> dict[str, Any]:
    """Wrap an interactivity payload in the Socket Mode ``interactive`` envelope."""
    return {
        "envelope_id": new_envelope_id(),
        "type": "interactive",
        "accepts_response_payload": False,
        "payload": payload,
    }


def find_button(
    blocks: list[dict[str, Any]], value: str, action_id: str | None = None
) -> dict[str, str] | None:
    """The button carrying ``value`` (and ``action_id``, if given): its action, block and text."""
    for block in blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("value") != value:
                continue
            if action_id is not None and element.get("action_id") != action_id:
                continue
            return {
                "action_id": str(element.get("action_id")),
                "block_id": str(block.get("block_id", "actions")),
                "text": str(element.get("text", {}).get("text", value)),
            }
    return None
