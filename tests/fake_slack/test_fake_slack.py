"""The fake Slack behaves as Slack does for the real slack_sdk and slack-bolt clients."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fake_slack import FakeSlack, app_mention, bot_message, message_changed, message_im

PING_INTERVAL = 0.5
"""Socket Mode ping interval for these tests: a dropped socket is noticed within one interval."""

BUTTONS: list[dict[str, Any]] = [
    {"type": "section", "block_id": "question", "text": {"type": "mrkdwn", "text": "Which one?"}},
    {
        "type": "actions",
        "block_id": "choices",
        "elements": [
            {
                "type": "button",
                "action_id": f"choice_{i}",
                "text": {"type": "plain_text", "text": label},
                "value": label.lower(),
            }
            for i, label in enumerate(["Pump", "Valve"])
        ],
    },
]


def web_client(fake: FakeSlack, token: str = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )


async def next_item(queue: asyncio.Queue[Any], timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(queue.get(), timeout)


@asynccontextmanager
async def connected(fake: FakeSlack, app: AsyncApp) -> AsyncIterator[AsyncSocketModeHandler]:
    """Run ``app`` over Socket Mode against the fake, and close it (and its session) after."""
    handler = AsyncSocketModeHandler(app, "xapp-test", ping_interval=PING_INTERVAL)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await fake.wait_connected()
        yield handler
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


def make_app(fake: FakeSlack) -> AsyncApp:
    # With `client` given, bolt uses the client's token and ignores (and warns about) `token`.
    return AsyncApp(client=web_client(fake))


def app_with_message_queue(fake: FakeSlack) -> tuple[AsyncApp, asyncio.Queue[dict[str, Any]]]:
    """An app whose only listener puts every ``message`` event it gets on a queue."""
    app = make_app(fake)
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        await seen.put(event)

    return app, seen


# -- Web API --------------------------------------------------------------------------------


async def test_post_message_is_recorded_with_parsed_blocks(fake_slack: FakeSlack) -> None:
    """chat.postMessage from slack_sdk (JSON) is recorded with its blocks as a list."""
    response = await web_client(fake_slack).chat_postMessage(
        channel="D1", text="Which one?", blocks=BUTTONS
    )

    assert response["ok"] and response["channel"] == "D1"
    [post] = fake_slack.posts
    assert post["blocks"] == BUTTONS
    assert post["ts"] == response["ts"]
    assert fake_slack.calls_to("chat.postMessage")[0].encoding == "json"
    assert fake_slack.messages[("D1", response["ts"])]["blocks"] == BUTTONS


async def test_form_encoded_post_has_its_blocks_string_parsed(fake_slack: FakeSlack) -> None:
    """A form-encoded call with ``blocks`` as a JSON string is recorded like a JSON one."""
    client = web_client(fake_slack)
    first = await client.api_call(
        "chat.postMessage", data={"channel": "D1", "text": "a", "blocks": json.dumps(BUTTONS)}
    )
    second = await client.chat_postMessage(channel="D1", text="b")

    assert fake_slack.calls_to("chat.postMessage")[0].encoding == "form"
    assert fake_slack.posts[0]["blocks"] == BUTTONS
    assert float(second["ts"]) > float(first["ts"])


async def test_update_edits_a_posted_message_and_rejects_unknown_ones(
    fake_slack: FakeSlack,
) -> None:
    client = web_client(fake_slack)
    posted = await client.chat_postMessage(channel="D1", text="Which one?", blocks=BUTTONS)

    await client.chat_update(channel="D1", ts=posted["ts"], text="Pump chosen", blocks=[])
    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel="D1", ts="1.000001", text="nope")

    assert fake_slack.updates[0]["ts"] == posted["ts"]
    assert fake_slack.messages[("D1", posted["ts"])]["text"] == "Pump chosen"
    assert missing.value.response["error"] == "message_not_found"


async def test_history_finds_one_posted_message_and_its_metadata_on_request(
    fake_slack: FakeSlack,
) -> None:
    client = web_client(fake_slack)
    metadata = {"event_type": "thing", "event_payload": {"id": "X-1"}}
    first = await client.chat_postMessage(channel="C1", text="one", metadata=metadata)
    await client.chat_postMessage(channel="C1", text="in a thread", thread_ts=first["ts"])
    second = await client.chat_postMessage(channel="C1", text="two")
    await client.chat_postMessage(channel="C2", text="elsewhere")
    one = await client.conversations_history(
        channel="C1", latest=first["ts"], inclusive=True, limit=1, include_all_metadata=True
    )
    assert [m["text"] for m in one["messages"]] == ["one"]
    assert one["messages"][0]["metadata"] == metadata
    plain = await client.conversations_history(channel="C1")
    assert [m["text"] for m in plain["messages"]] == ["two", "one"]  # newest first, no replies
    assert "metadata" not in plain["messages"][1]
    before = await client.conversations_history(channel="C1", latest=second["ts"])
    assert [m["text"] for m in before["messages"]] == ["one"]  # latest is exclusive


async def test_injected_429_is_retried_by_the_sdk_and_recorded(fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=0)

    response = await web_client(fake_slack).chat_postMessage(channel="D1", text="hi")

    assert response["ok"]
    statuses = [call.status for call in fake_slack.calls_to("chat.postMessage")]
    assert statuses == [429, 200]
    assert len(fake_slack.posts) == 1


async def test_users_info_answers_from_the_directory(fake_slack: FakeSlack) -> None:
    fake_slack.users["U1"] = {"id": "U1", "profile": {"email": "tech@example.com"}}
    client = web_client(fake_slack)

    found = await client.users_info(user="U1")
    with pytest.raises(SlackApiError) as unknown:
        await client.users_info(user="U2")

    assert found["user"]["profile"]["email"] == "tech@example.com"
    assert unknown.value.response["error"] == "user_not_found"


async def test_tokens_are_checked_and_unknown_methods_refused(fake_slack: FakeSlack) -> None:
    errors = {}
    for name, client, method in [
        ("wrong bot token", web_client(fake_slack, "xoxb-other"), "auth.test"),
        ("app token on a bot method", web_client(fake_slack, "xapp-test"), "auth.test"),
        ("bot token on connections.open", web_client(fake_slack), "apps.connections.open"),
        ("unknown method", web_client(fake_slack), "conversations.list"),
    ]:
        with pytest.raises(SlackApiError) as failure:
            await client.api_call(method)
        errors[name] = failure.value.response["error"]

    assert errors == {
        "wrong bot token": "invalid_auth",
        "app token on a bot method": "not_allowed_token_type",
        "bot token on connections.open": "not_allowed_token_type",
        "unknown method": "unknown_method",
    }


async def test_injected_error_answers_once_and_stubs_answer_unknown_methods(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.fail("chat.postMessage", "channel_not_found")
    fake_slack.stub("conversations.open", {"ok": True, "channel": {"id": "D9"}})
    client = web_client(fake_slack)

    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel="D1", text="hi")
    await client.chat_postMessage(channel="D1", text="hi")
    opened = await client.conversations_open(users="U1")

    assert failed.value.response["error"] == "channel_not_found"
    assert [post["text"] for post in fake_slack.posts] == ["hi"]
    assert opened["channel"]["id"] == "D9"
    assert fake_slack.calls_to("conversations.open")[0].args == {"users": "U1"}


async def test_blocks_slack_would_refuse_are_refused(fake_slack: FakeSlack) -> None:
    """Two buttons with one action_id in a block: Slack answers invalid_blocks."""
    blocks = json.loads(json.dumps(BUTTONS))
    blocks[1]["elements"][1]["action_id"] = "choice_0"

    with pytest.raises(SlackApiError) as refused:
        await web_client(fake_slack).chat_postMessage(channel="D1", text="x", blocks=blocks)

    assert refused.value.response["error"] == "invalid_blocks"
    assert "duplicate action_id" in refused.value.response["errors"][0]
    assert fake_slack.posts == []


async def test_socket_url_needs_a_ticket_from_connections_open(fake_slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"ws://127.0.0.1:{fake_slack.port}/socket?ticket=forged")
    assert refused.value.status == 401


async def test_wait_for_times_out_with_a_summary(fake_slack: FakeSlack) -> None:
    await web_client(fake_slack).chat_postMessage(channel="D1", text="hello there")

    with pytest.raises(AssertionError, match="never") as timed_out:
        await fake_slack.wait_for(lambda: False, timeout=0.05, what="never")

    assert "api chat.postMessage [json] -> ok" in str(timed_out.value)


# -- Socket Mode with slack-bolt ------------------------------------------------------------


async def test_hello_then_direct_message_reaches_listener_and_is_acked(
    fake_slack: FakeSlack,
) -> None:
    app, seen = app_with_message_queue(fake_slack)

    async with connected(fake_slack, app):
        envelope_id = await fake_slack.send_event(message_im("U1", "hello"))
        event = await next_item(seen)
        ack = await fake_slack.wait_for(lambda: fake_slack.envelope(envelope_id).acked)

    assert ack
    assert event["text"] == "hello" and event["channel_type"] == "im"
    assert fake_slack.acks[0].envelope_id == envelope_id
    assert fake_slack.acks[0].payload is None
    assert fake_slack.calls_to("auth.test"), "bolt authorizes with auth.test before dispatching"


async def test_unhandled_event_is_not_acked_and_slack_redelivers_it(
    fake_slack: FakeSlack,
) -> None:
    """Bolt answers 404 to an event no listener matches and sends no ack; Slack retries."""
    fake_slack.ack_deadline = 0.2
    app = make_app(fake_slack)

    async with connected(fake_slack, app):
        first = await fake_slack.send_event(app_mention("U1", "<@UBOT> hi"))
        event_id = fake_slack.envelope(first).event_id
        assert event_id is not None
        retry = await fake_slack.wait_for(
            lambda: next((e for e in fake_slack.envelopes_for(event_id) if e.retry_attempt), None)
        )

    assert retry.retry_attempt == 1 and retry.retry_reason == "timeout"
    assert retry.envelope_id != first
    assert fake_slack.acks == []


async def test_own_bot_message_is_acked_by_bolt_without_reaching_listeners(
    fake_slack: FakeSlack,
) -> None:
    app, seen = app_with_message_queue(fake_slack)

    async with connected(fake_slack, app):
        own = await fake_slack.send_event(bot_message("Which one?"))
        edited = await fake_slack.send_event(message_changed("U1", "1.000001", "fixed"))
        await fake_slack.wait_for(
            lambda: fake_slack.envelope(own).acked and fake_slack.envelope(edited).acked
        )
        event = await next_item(seen)

    assert event["subtype"] == "message_changed", "app.event('message') matches every subtype"
    assert seen.empty()


async def test_forced_redelivery_of_an_acked_event_carries_the_retry(
    fake_slack: FakeSlack,
) -> None:
    app = make_app(fake_slack)
    seen: asyncio.Queue[tuple[list[str], str]] = asyncio.Queue()

    @app.event("message")
    async def on_message(request: AsyncBoltRequest, body: dict[str, Any]) -> None:
        # bolt's Socket Mode adapter turns retry_attempt into the HTTP-mode retry header.
        await seen.put((list(request.headers.get("x-slack-retry-num", [])), body["event_id"]))

    async with connected(fake_slack, app):
        first = await fake_slack.send_event(message_im("U1", "hello"))
        await fake_slack.wait_for(lambda: fake_slack.envelope(first).acked)
        again = await fake_slack.redeliver(first)
        deliveries = [await next_item(seen), await next_item(seen)]

    event_id = fake_slack.envelope(first).event_id
    assert fake_slack.envelope(again).event_id == event_id
    assert deliveries == [(["0"], event_id), (["1"], event_id)]


async def test_a_redelivery_can_go_to_another_apps_socket(fake_slack: FakeSlack) -> None:
    """With two app instances connected, the event goes to one and its retry to the other."""
    one, seen_one = app_with_message_queue(fake_slack)
    two, seen_two = app_with_message_queue(fake_slack)

    async with connected(fake_slack, one), connected(fake_slack, two):
        await fake_slack.wait_connected(count=2)
        first_socket, second_socket = fake_slack.open_connections
        first = await fake_slack.send_event(message_im("U1", "hi"), connection=first_socket)
        again = await fake_slack.redeliver(first, connection=second_socket)
        events = [await next_item(seen_one), await next_item(seen_two)]
        await fake_slack.wait_for(
            lambda: fake_slack.envelope(first).acked and fake_slack.envelope(again).acked
        )

    event_id = fake_slack.envelope(first).event_id
    assert [e.connection for e in fake_slack.envelopes_for(event_id or "")] == [0, 1]
    assert [a.connection for a in fake_slack.acks] == [0, 1]
    assert events[0] == events[1] and events[0]["text"] == "hi"
    assert fake_slack.envelope(again).retry_attempt == 1


async def test_disconnect_message_makes_the_client_reconnect(fake_slack: FakeSlack) -> None:
    app, seen = app_with_message_queue(fake_slack)

    async with connected(fake_slack, app):
        await fake_slack.disconnect()
        await fake_slack.wait_connected(count=2)
        envelope_id = await fake_slack.send_event(message_im("U1", "still there?"))
        event = await next_item(seen)
        await fake_slack.wait_for(lambda: fake_slack.envelope(envelope_id).acked)

    assert event["text"] == "still there?"
    assert fake_slack.envelope(envelope_id).connection == 1
    assert len(fake_slack.calls_to("apps.connections.open")) == 2
    assert fake_slack.connections[0].closed_at is not None


async def test_dropped_socket_is_noticed_and_replaced_by_the_client(
    fake_slack: FakeSlack,
) -> None:
    app, seen = app_with_message_queue(fake_slack)

    async with connected(fake_slack, app):
        await fake_slack.drop()
        assert not fake_slack.connected
        await fake_slack.wait_connected(count=2, timeout=PING_INTERVAL * 6)
        await fake_slack.send_event(message_im("U1", "back"))
        event = await next_item(seen)

    assert event["text"] == "back"


async def test_button_press_reaches_action_listener_with_the_rendered_button(
    fake_slack: FakeSlack,
) -> None:
    app = make_app(fake_slack)
    pressed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @app.action(re.compile("^choice_"))
    async def on_choice(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        await respond("noted")
        await pressed.put(body)

    async with connected(fake_slack, app):
        posted = await app.client.chat_postMessage(channel="D1", text="Which?", blocks=BUTTONS)
        envelope_id = await fake_slack.send_action(
            "U1", "valve", channel="D1", message_ts=posted["ts"]
        )
        body = await next_item(pressed)
        await fake_slack.wait_for(lambda: fake_slack.responses)
        # bolt sends an action's ack only after it sees ack() called (it polls every 10 ms).
        await fake_slack.wait_for(lambda: fake_slack.envelope(envelope_id).acked)

    [action] = body["actions"]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "choice_1",
        "choices",
        "valve",
    )
    assert body["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "D1",
        "is_ephemeral": False,
    }
    assert body["message"]["blocks"] == BUTTONS
    assert fake_slack.responses[0].body["text"] == "noted"


async def test_unacked_events_are_redelivered_three_times_then_dropped(
    fake_slack: FakeSlack,
) -> None:
    """A socket that never acks sees the event four times: Slack retries three times."""
    fake_slack.ack_deadline = 0.05
    client = web_client(fake_slack, "xapp-test")
    url = (await client.apps_connections_open(app_token="xapp-test"))["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=5)
        event_id = "Ev0000000042"
        await fake_slack.send_event(message_im("U1", "anyone?"), event_id=event_id)
        await fake_slack.wait_for(lambda: len(fake_slack.envelopes_for(event_id)) == 4)
        await fake_slack.wait_for(lambda: fake_slack.pending_redeliveries == 0, timeout=1.0)
        received = [await ws.receive_json(timeout=5) for _ in range(4)]

    assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A1"}
    assert [r["retry_attempt"] for r in received] == [0, 1, 2, 3]
    assert {r["payload"]["event_id"] for r in received} == {event_id}
    assert len({r["envelope_id"] for r in received}) == 4
    assert len(fake_slack.envelopes_for(event_id)) == 4
