"""The Slack bridge: the real slack-bolt client against the project's own fake Slack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.logs import configure_logging
from bot.wiring import Services
from bridges.slack import SlackBridge, SlackConfig, _Lanes, session_key
from orchestrator_core.credentials import Credentials
from tests.conftest import ServicesFactory
from tests.fake_slack import FakeSlack, app_mention, bot_message, message_changed, message_im

# Alice (AB1234) is mapped by Slack id in the demo directory; Carlos (CD5678) by email only.
ALICE, CARLOS, STRANGER = "U0ALICE", "UCARLOS", "USTRANGER"


@dataclass
class Rig:
    """A running bridge, its fake Slack and TechAssist's services."""

    fake: FakeSlack
    bridge: SlackBridge
    services: Services

    def posts_to(self, channel: str) -> list[dict[str, Any]]:
        return [p for p in self.fake.posts if p["channel"] == channel]

    async def say(self, user: str, text: str, channel: str = "D1", **kw: Any) -> dict[str, Any]:
        """Send a DM and return the one message the turn posts."""
        before = len(self.posts_to(channel))
        await self.fake.send_event(message_im(user, text, channel=channel), **kw)
        await self.fake.wait_for(
            lambda: len(self.posts_to(channel)) > before, what=f"reply to {text!r}"
        )
        return self.posts_to(channel)[before]

    async def click(self, user: str, post: dict[str, Any], value: str) -> dict[str, Any]:
        """Press a button of ``post`` and return the message the turn posts."""
        channel = post["channel"]
        before = len(self.posts_to(channel))
        await self.fake.send_action(user, value, channel=channel, message_ts=post["ts"])
        await self.fake.wait_for(
            lambda: len(self.posts_to(channel)) > before, what=f"click {value}"
        )
        return self.posts_to(channel)[before]


def buttons(post: dict[str, Any]) -> list[str]:
    return [
        element["value"]
        for block in post.get("blocks") or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


@pytest.fixture
async def make_rig(
    fake_slack: FakeSlack, make_services: ServicesFactory
) -> AsyncIterator[Callable[..., Any]]:
    started: list[SlackBridge] = []

    async def factory(
        services: Services | None = None,
        redeem: Callable[[str, str], Awaitable[str | None]] | None = None,
        **config: Any,
    ) -> Rig:
        services = services or await make_services()
        options: dict[str, Any] = dict(
            api_url=fake_slack.api_url, ping_interval=0.5, post_backoff=0.01, progress_after=30
        )
        options.update(config)
        bridge = SlackBridge(
            services.orchestrator,
            SlackConfig(bot_token=fake_slack.bot_token, app_token=fake_slack.app_token, **options),
            redeem=redeem,
            seen=services.seen,
        )
        await bridge.start()
        started.append(bridge)
        await fake_slack.wait_connected()
        fake_slack.add_user(CARLOS, email="carlos.diaz@example.com")
        fake_slack.add_user(STRANGER, email="someone@example.com")
        return Rig(fake_slack, bridge, services)

    try:
        yield factory
    finally:
        for bridge in started:
            await bridge.stop()


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> Rig:
    started: Rig = await make_rig()
    return started


async def test_a_full_installation_by_direct_message(rig: Rig) -> None:
    proposal = await rig.say(ALICE, "hi")
    assert "ORD-1003" in proposal["text"] and buttons(proposal) == ["yes", "no"]
    fields = [b for b in proposal["blocks"] if b["type"] == "section" and "fields" in b]
    assert any("Ada Lovelace" in f["text"] for f in fields[0]["fields"])
    assert "FSAN" in (await rig.say(ALICE, "yes"))["text"]
    asked = await rig.say(
        ALICE, "{'ethernet_port': 2, 'fsan': 'ALCL90ABCDEF', 'model': 'G-240W-F'}"
    )
    assert "is active" in asked["text"] and "Wi-Fi" in asked["text"]
    await rig.say(ALICE, "skip")
    done = await rig.say(ALICE, "yes")
    assert "Order ORD-1003 is closed" in done["text"] and buttons(done) == ["next", "help", "end"]
    bye = await rig.say(ALICE, "end")
    assert "Orders completed this session: ORD-1003" in bye["text"] and not buttons(bye)
    order = await rig.services.workorders.get_order("ORD-1003")
    assert order is not None and order.status == "completed"


async def test_a_full_installation_by_button_clicks(rig: Rig) -> None:
    proposal = await rig.say(ALICE, "hello")
    asked = await rig.click(ALICE, proposal, "yes")
    assert "FSAN" in asked["text"]
    clicked = rig.fake.messages[(proposal["channel"], proposal["ts"])]
    assert not buttons(clicked) and "✔ yes" in str(clicked["blocks"])
    model_q = await rig.say(ALICE, "ALCL90ABCDEF")
    assert "G-240W-F" in buttons(model_q)
    port_q = await rig.click(ALICE, model_q, "G-240W-F")
    assert "Ethernet" in port_q["text"]
    wifi_q = await rig.say(ALICE, "2")
    online_q = await rig.say(ALICE, "skip")
    assert buttons(online_q) == ["yes", "no"], wifi_q["text"]
    done = await rig.click(ALICE, online_q, "yes")
    bye = await rig.click(ALICE, done, "end")
    assert "Orders completed this session: ORD-1003" in bye["text"]


async def test_a_second_click_on_the_same_message_does_nothing(rig: Rig) -> None:
    proposal = await rig.say(ALICE, "hello")
    await rig.click(ALICE, proposal, "yes")
    posts = len(rig.fake.posts)
    second = await rig.fake.send_action(ALICE, "no", channel="D1", message_ts=proposal["ts"])
    await rig.fake.wait_for(lambda: rig.fake.envelope(second).acked, what="the second click's ack")
    marker = await rig.say(ALICE, "status")  # a later turn, so the click had its chance
    assert len(rig.fake.posts) == posts + 1 and "Step 2 of 7" in marker["text"]


async def test_a_channel_mention_is_answered_in_its_thread(rig: Rig) -> None:
    event = app_mention(ALICE, "<@UBOT> hi", channel="C9")
    await rig.fake.send_event(event)
    await rig.fake.wait_for(lambda: rig.posts_to("C9"), what="the threaded reply")
    (reply,) = rig.posts_to("C9")
    assert reply["thread_ts"] == event["ts"] and "ORD-1003" in reply["text"]


async def test_redeliveries_of_an_event_produce_one_reply(rig: Rig) -> None:
    await rig.say(ALICE, "hi")
    await rig.say(ALICE, "yes")
    event = message_im(ALICE, "ALCL90ABCDEF")
    envelope = await rig.fake.send_event(event)
    first = rig.fake.envelope(envelope)
    assert first.event_id is not None
    for attempt in (1, 2, 3):
        await rig.fake.resend_event(first.event_id, retry_attempt=attempt)
    # The same message again under a new event id (Slack does this too): same channel and ts.
    await rig.fake.send_event(event)
    await rig.fake.wait_for(lambda: all(e.acked for e in rig.fake.envelopes_sent))
    await rig.fake.wait_for(lambda: len(rig.posts_to("D1")) == 3, what="the serial's reply")
    status = await rig.say(ALICE, "status")
    # hi, yes, the serial once, status: four turns, four messages.
    assert len(rig.posts_to("D1")) == 4, [p["text"][:40] for p in rig.posts_to("D1")]
    assert "fsan=ALCL90ABCDEF" in status["text"]


async def test_a_slow_tool_is_acked_at_once_and_announced_then_replaced(
    make_rig: Callable[..., Any], make_services: ServicesFactory
) -> None:
    rig: Rig = await make_rig(await make_services(sim_latency_ms=1000), progress_after=0.3)
    await rig.say(ALICE, "hi")
    await rig.say(ALICE, "yes")
    slow = message_im(ALICE, "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    envelope = await rig.fake.send_event(slow)  # activation and light levels: 1 s each
    await rig.fake.wait_for(lambda: rig.fake.envelope(envelope).acked, what="the ack")
    assert len(rig.posts_to("D1")) == 2  # acked before the slow steps answered
    await rig.fake.wait_for(lambda: len(rig.posts_to("D1")) == 3, what="the progress line")
    progress = rig.posts_to("D1")[2]
    assert progress["text"] == "Activating the ONT…"
    await rig.fake.wait_for(
        lambda: any(u["ts"] == progress["ts"] for u in rig.fake.updates), timeout=10
    )
    final = rig.fake.messages[("D1", progress["ts"])]
    assert "is active" in final["text"] and "Wi-Fi" in final["text"]
    assert len(rig.posts_to("D1")) == 3  # the result replaced the progress line


async def test_the_conversation_continues_after_a_disconnect_and_a_dropped_socket(
    rig: Rig,
) -> None:
    await rig.say(ALICE, "hi")
    await rig.fake.disconnect()
    await rig.fake.wait_connected(count=2)
    assert "FSAN" in (await rig.say(ALICE, "yes"))["text"]
    await rig.fake.drop()
    await rig.fake.wait_connected(count=3, timeout=10)
    assert "G-240W-F" in buttons(await rig.say(ALICE, "ALCL90ABCDEF"))
    assert await rig.bridge.connected()


async def test_bots_edits_and_deletions_are_ignored(rig: Rig) -> None:
    await rig.fake.send_event(bot_message("beep", bot_id="BOTHER", user="UOTHER"))
    await rig.fake.send_event(bot_message("my own echo"))
    await rig.fake.send_event(message_changed(ALICE, "1700000000.000001", "edited"))
    await rig.fake.wait_for(lambda: len(rig.fake.acks) >= 3, what="the acks")
    reply = await rig.say(ALICE, "hi")
    assert rig.fake.posts == [reply]


async def test_an_unmapped_user_is_refused_and_sees_nothing_else(rig: Rig) -> None:
    reply = await rig.say(STRANGER, "hi", channel="D7")
    assert "don't know which technician you are" in reply["text"]
    assert STRANGER in reply["text"] and "ORD-" not in reply["text"]
    again = await rig.say(STRANGER, "AB1234", channel="D7")
    assert "ORD-" not in again["text"] and "Alice" not in again["text"]


class Clock:
    """A clock the test moves forward, instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def signing_in(
    make_rig: Callable[..., Any], make_services: ServicesFactory
) -> tuple[Rig, Credentials, Clock]:
    """A bridge that lets unmapped users sign in with a code, on a clock the test moves."""
    clock = Clock()
    services = await make_services()
    credentials = Credentials(services.workorders, clock)
    rig: Rig = await make_rig(services, self_identify=True, redeem=credentials.redeem_code)
    return rig, credentials, clock


async def test_a_bare_cuid_no_longer_signs_an_unmapped_user_in(
    signing_in: tuple[Rig, Credentials, Clock],
) -> None:
    rig, _, _ = signing_in
    asked = await rig.say(STRANGER, "hi", channel="D7")
    assert "sign-in code" in asked["text"] and "AB1234 123456" in asked["text"]
    refused = await rig.say(STRANGER, "EF9012", channel="D7")
    assert refused["text"] == asked["text"] and "Erin" not in refused["text"]


async def test_a_one_time_code_signs_in_once(signing_in: tuple[Rig, Credentials, Clock]) -> None:
    rig, credentials, _ = signing_in
    code = (await credentials.issue_code("EF9012")).secret
    assert len(code) == 6 and code.isdigit()
    hello = await rig.say(STRANGER, f"ef9012 {code}", channel="D7")
    assert "Hi Erin Fox" in hello["text"]
    status = await rig.say(STRANGER, "status", channel="D7")  # the conversation stays signed in
    assert "Erin Fox" in status["text"]
    rig.fake.add_user("UOTHER", email="other@example.com")
    again = await rig.say("UOTHER", f"EF9012 {code}", channel="D8")
    assert "sign-in code" in again["text"] and "Erin" not in again["text"]


async def test_a_code_expires_after_ten_minutes(
    signing_in: tuple[Rig, Credentials, Clock],
) -> None:
    rig, credentials, clock = signing_in
    late = (await credentials.issue_code("EF9012")).secret
    in_time = (await credentials.issue_code("EF9012")).secret
    clock.now += timedelta(minutes=9, seconds=59)
    assert "Hi Erin Fox" in (await rig.say(STRANGER, f"EF9012 {in_time}", channel="D7"))["text"]
    clock.now += timedelta(seconds=2)
    rig.fake.add_user("UOTHER", email="other@example.com")
    refused = await rig.say("UOTHER", f"EF9012 {late}", channel="D8")
    assert "sign-in code" in refused["text"] and "Erin" not in refused["text"]


async def test_every_failed_sign_in_gets_the_same_answer(
    signing_in: tuple[Rig, Credentials, Clock],
) -> None:
    rig, credentials, _ = signing_in
    good = (await credentials.issue_code("EF9012")).secret
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    answers = {
        (await rig.say(STRANGER, text, channel="D7"))["text"]
        for text in ("hello", f"EF9012 {wrong}", f"ZZ0000 {good}", "!! 123456", "EF9012")
    }
    assert len(answers) == 1


async def test_five_wrong_codes_burn_the_technician_s_codes(
    signing_in: tuple[Rig, Credentials, Clock],
) -> None:
    rig, credentials, _ = signing_in
    good = (await credentials.issue_code("EF9012")).secret
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    for _ in range(5):
        await rig.say(STRANGER, f"EF9012 {wrong}", channel="D7")
    refused = await rig.say(STRANGER, f"EF9012 {good}", channel="D7")
    assert "sign-in code" in refused["text"] and "Erin" not in refused["text"]


async def test_a_user_is_mapped_by_their_slack_email(rig: Rig) -> None:
    reply = await rig.say(CARLOS, "hi", channel="D2")
    assert "Hi Carlos Diaz" in reply["text"] and "ORD-2001" in reply["text"]


async def test_a_rate_limited_post_waits_and_then_goes_through_once(rig: Rig) -> None:
    rig.fake.rate_limit("chat.postMessage", times=1, retry_after=0)
    reply = await rig.say(ALICE, "hi")
    assert "ORD-1003" in reply["text"]
    assert [c.status for c in rig.fake.calls_to("chat.postMessage")] == [429, 200]


async def test_a_failed_post_is_retried_and_nothing_is_lost(rig: Rig) -> None:
    rig.fake.fail("chat.postMessage", "internal_error", times=2)
    reply = await rig.say(ALICE, "hi")
    assert "ORD-1003" in reply["text"] and len(rig.posts_to("D1")) == 1


async def test_replies_that_never_got_through_come_first_next_time(rig: Rig) -> None:
    rig.fake.fail("chat.postMessage", "internal_error", times=4)  # 1 try + 3 retries
    await rig.fake.send_event(message_im(ALICE, "hi"))
    await rig.fake.wait_for(lambda: len(rig.fake.calls_to("chat.postMessage")) >= 4)
    reply = await rig.say(ALICE, "status")
    assert (
        reply["text"].startswith("Hi Alice Brown!") and "Technician: Alice Brown" in reply["text"]
    )


async def test_tokens_never_reach_the_logs(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")  # what `techassist serve` does, here onto pytest's handler
    await rig.say(ALICE, "hi")
    await rig.say(ALICE, "yes")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert rig.fake.bot_token not in logged and rig.fake.app_token not in logged


async def test_a_technicians_words_never_reach_the_logs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """bolt and its Socket Mode client log each envelope whole at DEBUG: held back."""
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")  # what `techassist serve` does, here onto pytest's handler
    await rig.say(ALICE, "hi")
    await rig.say(ALICE, "yes")
    await rig.say(ALICE, "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await rig.say(ALICE, "ssid=HomeNet")
    await rig.say(ALICE, "wifi-pass-Kq81x")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG is on
    assert "wifi-pass-Kq81x" not in logged


async def test_the_watchdog_rebuilds_a_handler_that_stays_disconnected(
    make_rig: Callable[..., Any],
) -> None:
    rig: Rig = await make_rig(rebuild_after=0.5, watchdog_interval=0.1)
    await rig.say(ALICE, "hi")
    stuck = rig.bridge.handler
    assert stuck is not None
    # A client whose own reconnects have stopped working (slack_sdk's can stop for good).
    stuck.client.auto_reconnect_enabled = False
    await rig.fake.drop()
    await rig.fake.wait_connected(count=2, timeout=10)
    assert rig.bridge.handler is not stuck
    assert "FSAN" in (await rig.say(ALICE, "yes"))["text"]


async def test_messages_sent_in_a_burst_are_answered_in_order(rig: Rig) -> None:
    for text in ("hi", "yes", "ALCL90ABCDEF", "G-240W-F"):
        await rig.fake.send_event(message_im(ALICE, text))
    await rig.fake.wait_for(lambda: len(rig.posts_to("D1")) == 4, what="four replies")
    texts = [p["text"] for p in rig.posts_to("D1")]
    assert "ORD-1003" in texts[0] and "FSAN" in texts[1]
    assert "model" in texts[2].lower() and "Ethernet" in texts[3]


async def test_turns_start_one_per_event_loop_iteration(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of envelopes must not start a burst of turns in one iteration: between two
    starts the loop reads the socket, so the envelopes behind them are acked in time."""
    iteration = 0

    async def count_iterations() -> None:
        nonlocal iteration
        while True:
            iteration += 1
            await asyncio.sleep(0)  # once per iteration of the loop

    started_in: list[int] = []
    real = rig.services.orchestrator.handle_turn

    async def handle_turn(turn: Any, **kw: Any) -> Any:
        started_in.append(iteration)
        return await real(turn, **kw)

    monkeypatch.setattr(rig.services.orchestrator, "handle_turn", handle_turn)
    counter = asyncio.create_task(count_iterations())
    try:
        channels = [f"D{i}" for i in range(30)]
        for channel in channels:  # all on the socket before the bridge reads any
            await rig.fake.send_event(message_im(ALICE, "hi", channel=channel))
        await rig.fake.wait_for(
            lambda: all(rig.posts_to(c) for c in channels), timeout=15, what="30 replies"
        )
    finally:
        counter.cancel()
    assert len(started_in) == 30 and len(set(started_in)) == 30, started_in
    assert all(e.acked for e in rig.fake.envelopes_sent)


async def test_lanes_keep_each_sessions_order_and_start_in_arrival_order() -> None:
    lanes = _Lanes()
    ran: list[str] = []

    def job(name: str) -> Callable[[], Any]:
        async def run() -> None:
            ran.append(name + "+")
            await asyncio.sleep(0.01 if name == "a1" else 0)
            ran.append(name + "-")

        return run

    a, b = session_key("T1", "D1", "U1"), session_key("T1", "D2", "U2")
    for key, name in ((a, "a1"), (b, "b1"), (a, "a2"), (b, "b2")):
        lanes.submit(key, job(name))
    await lanes.drain(timeout=5)
    assert ran.index("a1-") < ran.index("a2+") and ran.index("b1-") < ran.index("b2+")
    assert ran.index("a1+") < ran.index("b1+")  # arrival order across sessions
    assert len(ran) == 8


async def test_a_cancelled_waiting_job_never_starts() -> None:
    lanes = _Lanes()
    ran: list[str] = []

    async def slow() -> None:
        await asyncio.sleep(10)

    async def never() -> None:
        ran.append("never")

    key = session_key("T1", "D1", "U1")
    lanes.submit(key, slow)
    lanes.submit(key, never)
    await lanes.drain(timeout=0.05)  # cancels both
    await asyncio.sleep(0.01)
    assert ran == []


async def test_a_button_click_is_acked_without_bolts_ack_poll(rig: Rig) -> None:
    """Bolt polls every 10 ms for the ack of a listener run in a task; ours run inline."""
    proposal = await rig.say(ALICE, "hello")

    async def click(value: str) -> float:
        sent = await rig.fake.send_action(ALICE, value, channel="D1", message_ts=proposal["ts"])
        envelope = rig.fake.envelope(sent)
        await rig.fake.wait_for(lambda: envelope.acked, what="the ack")
        assert envelope.acked_at is not None
        return envelope.acked_at - envelope.sent_at

    # The first click acts, the others are only acked.
    latencies = [await click(value) for value in ("yes", "no", "yes")]
    assert min(latencies) < 0.010, latencies


async def test_a_bot_token_in_the_environment_raises_no_warning(
    fake_slack: FakeSlack,
    make_rig: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`techassist serve` reads SLACK_BOT_TOKEN, and so does bolt, which then warned that
    the token it found goes unused beside our client (which carries that same token)."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", fake_slack.bot_token)
    caplog.set_level(logging.WARNING)
    rig: Rig = await make_rig()
    await rig.say(ALICE, "hi")
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
