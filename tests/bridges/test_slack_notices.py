"""Messages nobody asked for, in Slack: the server's own wiring (its lifespan, the notifier,
the bridge) with the real slack-bolt client against the fake Slack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from bot.app import create_app
from bot.wiring import Services
from bridges.slack import SlackBridge, session_key
from tests.conftest import ServicesFactory
from tests.fake_slack import FakeSlack, app_mention, message_im

ALICE = "U0ALICE"  # AB1234 in the demo directory


@dataclass
class Served:
    """TechAssist's app running its lifespan (Slack on), its services and the fake Slack."""

    fake: FakeSlack
    app: FastAPI
    services: Services

    @property
    def bridge(self) -> SlackBridge:
        bridge: SlackBridge = self.app.state.slack
        return bridge

    def posts_to(self, channel: str) -> list[dict[str, Any]]:
        return [p for p in self.fake.posts if p["channel"] == channel]

    async def say(self, user: str, text: str, channel: str = "D1") -> dict[str, Any]:
        """Send a DM and return the one message the turn posts."""
        before = len(self.posts_to(channel))
        await self.fake.send_event(message_im(user, text, channel=channel))
        await self.fake.wait_for(
            lambda: len(self.posts_to(channel)) > before, what=f"reply to {text!r}"
        )
        return self.posts_to(channel)[before]


@pytest.fixture
async def serve(
    fake_slack: FakeSlack, make_services: ServicesFactory
) -> AsyncIterator[Callable[..., Any]]:
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Served:
            services = await make_services(
                slack_bot_token=fake_slack.bot_token,
                slack_app_token=fake_slack.app_token,
                slack_api_url=fake_slack.api_url,
                slack_ping_interval=0.5,
                **overrides,
            )
            app = create_app(services)
            await stack.enter_async_context(app.router.lifespan_context(app))
            await fake_slack.wait_connected()
            return Served(fake_slack, app, services)

        yield start


@pytest.fixture
async def served(serve: Callable[..., Any]) -> Served:
    started: Served = await serve()
    return started


def texts(posts: list[dict[str, Any]]) -> list[str]:
    return [str(p["text"]) for p in posts]


async def test_a_notice_reaches_a_dm_technician_once_even_when_deliveries_race(
    served: Served,
) -> None:
    await served.say(ALICE, "hi")
    await served.say(ALICE, "yes")
    key = await served.services.orchestrator.notify(
        "AB1234",
        "Use port 2 on the ONT, the others are disabled.",
        kind="answer",
        data={"escalation_id": "ESC-0007", "operator": "ana"},
    )
    assert key is not None and key.channel == "D1"
    # The notifier's own delivery and two more, all at once.
    await asyncio.gather(served.bridge.deliver(key), served.bridge.deliver(key))
    await served.fake.wait_for(
        lambda: any("Use port 2" in t for t in texts(served.posts_to("D1"))),
        what="the dispatcher's answer",
    )
    status = await served.say(ALICE, "status")  # a later turn: every delivery had its chance
    answers = [p for p in served.posts_to("D1") if "Use port 2" in p["text"]]
    assert len(answers) == 1, texts(served.posts_to("D1"))
    assert "Message from dispatch · ana · ESC-0007" in str(answers[0]["blocks"])
    assert "thread_ts" not in answers[0] or not answers[0]["thread_ts"]
    assert "Use port 2" not in status["text"] and "Step 2 of 7" in status["text"]


async def test_a_channel_conversation_gets_its_notice_in_its_thread(served: Served) -> None:
    mention = app_mention(ALICE, "<@UBOT> hi", channel="C9")
    await served.fake.send_event(mention)
    await served.fake.wait_for(lambda: served.posts_to("C9"), what="the threaded reply")
    key = await served.services.orchestrator.notify("AB1234", "Call me back", kind="answer")
    assert key is not None and key.channel == "C9"
    await served.fake.wait_for(
        lambda: len(served.posts_to("C9")) == 2, what="the notice in the thread"
    )
    notice = served.posts_to("C9")[1]
    assert notice["text"] == "Call me back" and notice["thread_ts"] == mention["ts"]


async def test_a_notice_that_cannot_be_posted_comes_first_on_the_next_message(
    served: Served,
) -> None:
    await served.say(ALICE, "hi")
    served.fake.fail("chat.postMessage", "internal_error", times=4)  # the first try and 3 retries
    key = await served.services.orchestrator.notify("AB1234", "Bring a longer cable", kind="answer")
    assert key is not None
    await served.fake.wait_for(
        lambda: len([c for c in served.fake.calls_to("chat.postMessage") if not c.ok]) == 4,
        what="every try of the notice to fail",
    )
    await served.bridge.deliver(key)  # nothing left to take: posts nothing
    reply = await served.say(ALICE, "yes")
    assert reply["text"].startswith("Bring a longer cable"), reply["text"]
    assert "FSAN" in reply["text"]
    assert sum("Bring a longer cable" in t for t in texts(served.posts_to("D1"))) == 1


async def test_a_reminder_reaches_a_slack_technician_once(served: Served) -> None:
    await served.say(ALICE, "hi")
    await served.say(ALICE, "yes")
    session = await served.services.sessions.get_session_data(session_key("T1", "D1", ALICE))
    assert session is not None and session.remind_at is not None
    orchestrator = served.services.orchestrator
    assert await orchestrator.fire_reminders(now=session.remind_at + 1) == 1
    assert await orchestrator.fire_reminders(now=session.remind_at + 3600) == 0
    await served.fake.wait_for(
        lambda: any("Still on ORD-1003?" in t for t in texts(served.posts_to("D1"))),
        what="the reminder",
    )
    reply = await served.say(ALICE, "status")
    assert "Still on" not in reply["text"]
    assert sum("Still on ORD-1003?" in t for t in texts(served.posts_to("D1"))) == 1
