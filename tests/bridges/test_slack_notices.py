"""Messages nobody asked for, in Slack: the server's own wiring (its lifespan, the notifier,
the bridge) with the real slack-bolt client against the fake Slack."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from bot.app import create_app
from bot.wiring import Services
from bridges.slack import TAKE, SlackBridge, session_key
from tests.bot.live import techassist
from tests.bridges.server import start
from tests.bridges.test_console import add_operator, page_csrf
from tests.bridges.test_console import client as console_client
from tests.bridges.test_console import sign_in as console_sign_in
from tests.bridges.test_slack import buttons
from tests.conftest import ServicesFactory
from tests.fake_slack import FakeSlack, app_mention, message, message_im
from tests.redis_server import delete_prefix, new_prefix, redis_url

ALICE = "U0ALICE"  # AB1234 in the demo directory


@dataclass
class Slack:
    """The fake Slack as its people use it: DMs to the bot, and what the bot posted."""

    fake: FakeSlack

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


@dataclass
class Served(Slack):
    """TechAssist's app running its lifespan (Slack on), and its services."""

    app: FastAPI
    services: Services
    stack: AsyncExitStack

    async def stop(self) -> None:
        await self.stack.aclose()

    @property
    def bridge(self) -> SlackBridge:
        bridge: SlackBridge = self.app.state.slack
        return bridge


@pytest.fixture
async def serve(
    fake_slack: FakeSlack, make_services: ServicesFactory
) -> AsyncIterator[Callable[..., Any]]:
    """Start TechAssist with Slack on (again, on the same data directory, after a stop)."""
    stacks: list[AsyncExitStack] = []

    async def launch(data_dir: Path | None = None, **overrides: Any) -> Served:
        services = await make_services(
            data_dir,
            slack_bot_token=fake_slack.bot_token,
            slack_app_token=fake_slack.app_token,
            slack_api_url=fake_slack.api_url,
            slack_ping_interval=0.5,
            **overrides,
        )
        app = create_app(services)
        stack = AsyncExitStack()
        stacks.append(stack)
        opened = fake_slack.connections_opened
        await stack.enter_async_context(app.router.lifespan_context(app))
        await fake_slack.wait_connected(count=opened + 1)
        return Served(fake_slack, app, services, stack)

    try:
        yield launch
    finally:
        for stack in reversed(stacks):
            await stack.aclose()


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
    reply = await served.say(ALICE, "yes")
    assert reply["text"].startswith("Bring a longer cable"), reply["text"]
    assert "FSAN" in reply["text"]
    assert sum("Bring a longer cable" in t for t in texts(served.posts_to("D1"))) == 1


async def test_a_notice_told_while_slack_was_down_is_posted_when_it_connects(
    served: Served, serve: Callable[..., Any]
) -> None:
    await served.say(ALICE, "hi")
    await served.stop()
    key = await served.services.orchestrator.notify("AB1234", "Gate code is 4711", kind="answer")
    assert key is not None
    again: Served = await serve()
    await again.fake.wait_for(
        lambda: any("Gate code" in p["text"] for p in again.posts_to("D1")), what="the notice"
    )
    reply = await again.say(ALICE, "yes")
    assert "Gate code" not in reply["text"] and "FSAN" in reply["text"]


async def test_many_notices_at_once_arrive_in_one_message(
    served: Served, serve: Callable[..., Any]
) -> None:
    await served.say(ALICE, "hi")
    await served.stop()
    for n in range(1, 31):
        await served.services.orchestrator.notify("AB1234", f"Note {n} of 30", kind="answer")
    again: Served = await serve()
    post = await again.fake.wait_for(
        lambda: next((p for p in again.posts_to("D1") if "Note 1 of 30" in p["text"]), None),
        what="the notices",
    )
    assert post["text"].splitlines()[-1] == "Note 30 of 30"
    assert "Note 30 of 30" in str(post["blocks"]) and len(post["blocks"]) < 50


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


# ---------------------------------------------------------------------- the dispatch channel

DISPATCH = "C0DISPATCH"
ANA, BEN = "UANA", "UBEN"


@pytest.fixture
async def desk(serve: Callable[..., Any]) -> Served:
    """TechAssist with the dispatch channel on, two operators in Slack's directory."""
    started: Served = await serve(slack_dispatch_channel=DISPATCH)
    started.fake.add_user(ANA, name="Ana")
    started.fake.add_user(BEN, name="Ben")
    return started


async def escalated(served: Served) -> tuple[str, dict[str, Any]]:
    """Alice escalates ORD-1003 at its second step; the escalation id and its post."""
    await served.say(ALICE, "hi")
    await served.say(ALICE, "yes")
    await served.say(ALICE, "ALCL90ABCDEF")
    said = await served.say(ALICE, "escalate")
    (ident,) = re.findall(r"ESC-\d+", said["text"]) or ["?"]
    post = await served.fake.wait_for(
        lambda: next((p for p in served.posts_to(DISPATCH) if ident in p["text"]), None),
        what="the escalation's post in the dispatch channel",
    )
    return ident, post


async def reply_in_thread(served: Slack, user: str, post: dict[str, Any], text: str) -> None:
    event = message(user, text, channel=DISPATCH, channel_type="channel", thread_ts=post["ts"])
    await served.fake.send_event(event)


async def test_a_new_escalation_is_posted_with_a_take_button_and_take_marks_it_taken(
    desk: Served,
) -> None:
    ident, post = await escalated(desk)
    shown = str(post["blocks"])
    assert "AB1234" in post["text"] and "ORD-1003" in post["text"]
    assert "ALCL90ABCDEF" in shown and "2 of 7" in shown, shown
    assert buttons(post) == [ident]
    assert post["metadata"]["event_payload"]["escalation_id"] == ident
    await desk.fake.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
    await desk.fake.wait_for(
        lambda: any(u["ts"] == post["ts"] for u in desk.fake.updates), what="the post updated"
    )
    updated = desk.fake.messages[(DISPATCH, post["ts"])]
    assert not buttons(updated) and "Taken by Ana" in str(updated["blocks"])
    escalation = await desk.services.dispatch.get(ident)
    assert escalation.status == "taken" and escalation.operator == "Ana"


async def test_a_second_take_is_refused_in_the_thread(desk: Served) -> None:
    ident, post = await escalated(desk)
    await desk.fake.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
    await desk.fake.wait_for(lambda: desk.fake.updates, what="the first take")
    # Ben's Slack still showed the button when he clicked it.
    await desk.fake.send_action(
        BEN, ident, channel=DISPATCH, message_ts=post["ts"], action_id=TAKE, block_id="take"
    )
    refusal = await desk.fake.wait_for(
        lambda: next((p for p in desk.posts_to(DISPATCH) if p.get("thread_ts")), None),
        what="the refusal in the thread",
    )
    assert refusal["thread_ts"] == post["ts"] and "already taken by Ana" in refusal["text"]
    assert (await desk.services.dispatch.get(ident)).operator == "Ana"


async def test_a_thread_reply_reaches_the_technician(desk: Served) -> None:
    ident, post = await escalated(desk)
    before = len(desk.posts_to("D1"))
    await desk.fake.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
    await desk.fake.wait_for(lambda: desk.fake.updates, what="the take")
    await reply_in_thread(desk, ANA, post, "The FSAN is on the sticker under the ONT.")
    answer = await desk.fake.wait_for(
        lambda: next((p for p in desk.posts_to("D1")[before:] if "sticker" in p["text"]), None),
        what="the answer in the technician's DM",
    )
    assert "Message from dispatch · Ana · " + ident in str(answer["blocks"])
    sent = await desk.fake.wait_for(
        lambda: next((p for p in desk.posts_to(DISPATCH) if p.get("thread_ts")), None),
        what="the confirmation in the thread",
    )
    assert sent["text"] == "Sent to AB1234."
    escalation = await desk.services.dispatch.get(ident)
    assert escalation.status == "answered" and escalation.answer is not None


async def test_a_reply_to_an_open_escalation_takes_it_and_answers(desk: Served) -> None:
    ident, post = await escalated(desk)
    await reply_in_thread(desk, BEN, post, "Try port 2.")
    await desk.fake.wait_for(
        lambda: any(p["text"].endswith(": Try port 2.") for p in desk.posts_to("D1")),
        what="the answer",
    )
    escalation = await desk.services.dispatch.get(ident)
    assert escalation.status == "answered" and escalation.operator == "Ben"


@pytest.mark.parametrize("metadata", [True, False], ids=["metadata", "blocks only"])
async def test_a_thread_reply_is_understood_after_a_restart(
    desk: Served, serve: Callable[..., Any], metadata: bool
) -> None:
    ident, post = await escalated(desk)
    if not metadata:  # a workspace that drops message metadata: the block ids still say
        del desk.fake.messages[(DISPATCH, post["ts"])]["metadata"]
    await desk.stop()
    again: Served = await serve(slack_dispatch_channel=DISPATCH)
    await reply_in_thread(again, ANA, post, "Use the spare ONT in the van.")
    await again.fake.wait_for(
        lambda: any("spare ONT" in p["text"] for p in again.posts_to("D1")), what="the answer"
    )
    assert again.fake.calls_to("conversations.history")
    assert (await again.services.dispatch.get(ident)).status == "answered"


async def test_a_handed_back_order_is_finished_in_slack(desk: Served) -> None:
    ident, post = await escalated(desk)
    await desk.fake.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
    await desk.fake.wait_for(lambda: desk.fake.updates, what="the take")
    await desk.services.dispatch.hand_back(ident, "Ana")  # as the console does
    notice = await desk.fake.wait_for(
        lambda: next(
            (p for p in desk.posts_to("D1") if "back with you" in p["text"]),
            None,
        ),
        what="the hand-back in the technician's DM",
    )
    assert "Handed back by dispatch · Ana" in str(notice["blocks"])
    offer = await desk.say(ALICE, "hi")
    assert "ORD-1003" in offer["text"] and "resume" in offer["text"], offer["text"]
    resumed = await desk.say(ALICE, "yes")
    assert "Resuming ORD-1003 at step 2" in resumed["text"], resumed["text"]
    step = await desk.say(ALICE, "{'ethernet_port': 2, 'model': 'G-240W-F'}")
    assert "Wi-Fi" in step["text"], step["text"]
    await desk.say(ALICE, "skip")
    done = await desk.say(ALICE, "yes")
    assert "Order ORD-1003 is closed" in done["text"], done["text"]
    order = await desk.services.workorders.get_order("ORD-1003")
    assert order is not None and order.status == "completed"


# ---------------------------------------------------------------------- the real server


async def test_serve_posts_escalations_to_the_dispatch_channel_and_answers_reach_slack(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    server = await asyncio.to_thread(
        start,
        tmp_path,
        SLACK_BOT_TOKEN=fake_slack.bot_token,
        SLACK_APP_TOKEN=fake_slack.app_token,
        TECHASSIST_SLACK_API_URL=fake_slack.api_url,
        TECHASSIST_SLACK_PING_INTERVAL="0.5",
        TECHASSIST_SLACK_DISPATCH_CHANNEL=f" {DISPATCH} ",
    )
    try:
        await fake_slack.wait_connected()
        fake_slack.add_user(ANA, name="Ana")
        served = Slack(fake_slack)
        await served.say(ALICE, "hi")
        await served.say(ALICE, "yes")
        said = await served.say(ALICE, "escalate")
        (ident,) = re.findall(r"ESC-\d+", said["text"])
        post = await fake_slack.wait_for(
            lambda: next((p for p in served.posts_to(DISPATCH) if ident in p["text"]), None),
            what="the escalation's post",
        )
        await fake_slack.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
        await fake_slack.wait_for(lambda: fake_slack.updates, what="the take")
        await reply_in_thread(served, ANA, post, "Swap the patch cord first.")
        await fake_slack.wait_for(
            lambda: any("Swap the patch cord" in p["text"] for p in served.posts_to("D1")),
            what="the answer in the technician's DM",
        )
    finally:
        await asyncio.to_thread(server.stop)
    output = "".join(server.output)
    assert "Traceback" not in output and "Swap the patch cord" not in output
    assert f"new escalations go to Slack channel {DISPATCH}" in output


def test_a_channel_name_instead_of_an_id_is_refused_at_start(tmp_path: Path) -> None:
    done = techassist(tmp_path, "serve", TECHASSIST_SLACK_DISPATCH_CHANNEL="#dispatch")
    assert done.returncode != 0
    assert "TECHASSIST_SLACK_DISPATCH_CHANNEL='#dispatch'" in done.stderr
    assert "must be a Slack channel id such as C0123ABCD" in done.stderr


async def test_two_instances_on_redis_post_a_notice_and_an_escalation_once(
    tmp_path: Path, serve: Callable[..., Any]
) -> None:
    url, prefix = redis_url(), new_prefix()
    shared: dict[str, Any] = dict(
        store=url,
        redis_prefix=prefix,
        secret_key=Fernet.generate_key().decode(),
        slack_dispatch_channel=DISPATCH,
    )
    try:
        instances: list[Served] = []
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
            instances.append(await serve(data_dir=tmp_path / name, **shared))
        one, two = instances
        await one.say(ALICE, "hi")
        await one.say(ALICE, "yes")
        # Told on one instance, heard by both through Redis: each one's bridge delivers.
        key = await two.services.orchestrator.notify("AB1234", "Ladder in the van", kind="answer")
        assert key is not None
        await one.fake.wait_for(
            lambda: any("Ladder" in p["text"] for p in one.posts_to("D1")), what="the notice"
        )
        said = await one.say(ALICE, "escalate")
        (ident,) = re.findall(r"ESC-\d+", said["text"])
        await one.fake.wait_for(
            lambda: any(ident in p["text"] for p in one.posts_to(DISPATCH)), what="the post"
        )
        await one.say(ALICE, "status")  # a later turn: a doubled post had its time to show
        assert sum("Ladder" in p["text"] for p in one.posts_to("D1")) == 1
        assert sum(ident in p["text"] for p in one.posts_to(DISPATCH)) == 1
    finally:
        delete_prefix(url, prefix)


async def test_only_the_taker_answers_and_the_others_are_told_why(desk: Served) -> None:
    ident, post = await escalated(desk)
    await desk.fake.send_action(ANA, ident, channel=DISPATCH, message_ts=post["ts"])
    await desk.fake.wait_for(lambda: desk.fake.updates, what="the take")
    before = len(desk.posts_to("D1"))
    await reply_in_thread(desk, BEN, post, "Try port 3.")
    refusal = await desk.fake.wait_for(
        lambda: next((p for p in desk.posts_to(DISPATCH) if p.get("thread_ts")), None),
        what="the refusal in the thread",
    )
    assert refusal["text"] == f"{ident}: {ident} was taken by Ana; only they can answer it."
    # Slack escapes <, > and & and wraps links; the technician reads what Ana typed.
    text = "Use port &lt;2&gt; &amp; see <https://example.com/ont|the manual>"
    await reply_in_thread(desk, ANA, post, text)
    answer = await desk.fake.wait_for(
        lambda: next((p for p in desk.posts_to("D1")[before:] if "port" in p["text"]), None),
        what="Ana's answer",
    )
    assert answer["text"] == (
        "From the dispatcher (Ana) about ORD-1003: "
        "Use port <2> & see the manual (https://example.com/ont)"
    )
    assert "Try port 3" not in str(desk.posts_to("D1"))


async def test_the_console_answers_and_hands_back_to_a_slack_technician_who_finishes(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The real server, an operator in the console over HTTP, the technician in Slack."""
    add_operator(tmp_path)
    server = await asyncio.to_thread(
        start,
        tmp_path,
        SLACK_BOT_TOKEN=fake_slack.bot_token,
        SLACK_APP_TOKEN=fake_slack.app_token,
        TECHASSIST_SLACK_API_URL=fake_slack.api_url,
        TECHASSIST_SLACK_PING_INTERVAL="0.5",
        TECHASSIST_SLACK_DISPATCH_CHANNEL=DISPATCH,
    )
    slack = Slack(fake_slack)
    try:
        await fake_slack.wait_connected()
        await slack.say(ALICE, "hi")
        await slack.say(ALICE, "yes")
        said = await slack.say(ALICE, "escalate")
        (ident,) = re.findall(r"ESC-\d+", said["text"])
        await fake_slack.wait_for(
            lambda: any(ident in p["text"] for p in slack.posts_to(DISPATCH)), what="the post"
        )
        async with console_client(server) as console:
            await console_sign_in(console)
            csrf = {"X-CSRF-Token": await page_csrf(console)}
            path = f"/ops/api/escalations/{ident}"
            for action, body in (
                ("take", {}),
                ("answer", {"text": "The FSAN is on the box."}),
                ("handback", {}),
            ):
                done = await console.post(f"{path}/{action}", json=body, headers=csrf)
                assert done.status_code == 200, done.text
        await fake_slack.wait_for(
            lambda: any("back with you" in p["text"] for p in slack.posts_to("D1")),
            what="the hand-back in the technician's DM",
        )
        # One message each, or both in one when the second came before the first was posted.
        shown = "\n".join(texts(slack.posts_to("D1")))
        assert "From the dispatcher (ana) about ORD-1003: The FSAN is on the box." in shown
        assert shown.count("The FSAN is on the box.") == 1
        assert shown.index("The FSAN is on the box.") < shown.index("back with you")
        resumed = await slack.say(ALICE, "yes")
        assert "Resuming ORD-1003 at step 2" in resumed["text"], resumed["text"]
        await slack.say(ALICE, "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
        await slack.say(ALICE, "skip")
        done_post = await slack.say(ALICE, "yes")
        assert "Order ORD-1003 is closed" in done_post["text"], done_post["text"]
    finally:
        await asyncio.to_thread(server.stop)
    output = "".join(server.output)
    assert "Traceback" not in output and "The FSAN is on the box." not in output
