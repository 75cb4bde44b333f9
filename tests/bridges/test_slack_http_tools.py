"""Failing HTTP tools retried out of sight: the real server against the fake Slack.

``techassist simulate`` and ``techassist serve`` (a copy of the demo tools file
pointed at the simulator, Slack's tokens pointed at the fake) run as processes.
While the server retries a 5xx or a timeout, the technician sees one progress
line, then the result in its place: never a message per failed try.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.bridges.http_rig import SIM_TOKEN, WIFI_PASSWORD, SimAdmin, simulator, start_serve
from tests.bridges.server import Server
from tests.fake_slack import FakeSlack, message_im

ALICE = "U0ALICE"
#: Long enough for a quick turn to answer first, short enough for a retried one to be announced.
PROGRESS_AFTER = "0.3"
#: A progress line ends like this ("Activating the ONT…"); a turn's answer replaces it.
PROGRESS_MARK = "…"


class SlackChat:
    """Alice's direct messages with the server, one turn at a time."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake

    def posts(self) -> list[dict[str, Any]]:
        return [post for post in self.fake.posts if post["channel"] == "D1"]

    async def say(self, text: str) -> tuple[dict[str, Any], bool]:
        """Send ``text``; the turn's one message as it stands at the end, and whether it
        started as a progress line."""
        before = len(self.posts())
        await self.fake.send_event(message_im(ALICE, text))
        await self.fake.wait_for(lambda: len(self.posts()) > before, timeout=20, what="a reply")
        post = self.posts()[before]
        announced = post["text"].endswith(PROGRESS_MARK)
        if announced:
            await self.fake.wait_for(
                lambda: any(u["ts"] == post["ts"] for u in self.fake.updates),
                timeout=20,
                what="the result in place of the progress line",
            )
        assert len(self.posts()) == before + 1, [p["text"][:60] for p in self.posts()[before:]]
        return self.fake.messages[("D1", post["ts"])], announced


@dataclass
class Rig:
    """The chat, the simulator's admin endpoint, and both processes (for their logs)."""

    slack: SlackChat
    admin: SimAdmin
    sim: Server
    server: Server


@pytest.fixture
async def rig(
    tmp_path_factory: pytest.TempPathFactory, fake_slack: FakeSlack
) -> AsyncIterator[Rig]:
    """Both processes for the module's one test (the fake Slack lives as long as a test)."""
    sim_dir, serve_dir = tmp_path_factory.mktemp("simulator"), tmp_path_factory.mktemp("serve")
    with simulator(sim_dir) as sim:
        admin = SimAdmin(sim)
        server: Server = await asyncio.to_thread(_serve, serve_dir, sim, fake_slack)
        try:
            await fake_slack.wait_connected()
            yield Rig(SlackChat(fake_slack), admin, sim, server)
        finally:
            await asyncio.to_thread(server.stop)
            admin.close()


def _serve(directory: Path, sim: Server, fake: FakeSlack) -> Server:
    """``techassist serve`` against the simulator and the fake Slack, progress lines early."""
    return start_serve(
        directory,
        sim,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_APP_TOKEN=fake.app_token,
        TECHASSIST_SLACK_API_URL=fake.api_url,
        TECHASSIST_SLACK_PING_INTERVAL="0.5",
        TECHASSIST_SLACK_PROGRESS_AFTER=PROGRESS_AFTER,
    )


async def test_5xx_and_timeouts_are_retried_behind_one_progress_message(
    rig: Rig,
) -> None:
    slack, admin = rig.slack, rig.admin
    admin.faults(
        {
            "check_light_levels": {"error_rate": 1.0, "error_status": 503, "times": 2},
            "configure_wifi": {"timeout_rate": 1.0, "times": 1, "hang_seconds": 5},
        }
    )
    proposal, _ = await slack.say("hi")
    assert "ORD-1003" in proposal["text"]
    await slack.say("yes")
    lit, announced = await slack.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    assert announced and "Light levels OK" in lit["text"] and "Wi-Fi" in lit["text"], lit
    await slack.say("ssid=HomeNet")
    configured, announced = await slack.say(WIFI_PASSWORD)
    assert announced and "HomeNet" in configured["text"], configured
    for result in (lit, configured):
        assert "503" not in result["text"] and "did not answer" not in result["text"], result
        assert "retry" not in result["text"].lower(), result
    # One message per turn (a failed try posting its own would show up by the next turn).
    assert len(slack.posts()) == 5
    stats = admin.stats()
    assert stats["requests"]["check_light_levels"] == 3  # two 503s, then the answer
    assert stats["requests"]["configure_wifi"] == 2  # a timeout, then the answer
    assert stats["effects"]["check_light_levels"] == 1 and stats["effects"]["configure_wifi"] == 1
    for output in (rig.sim.output, rig.server.output):  # both processes log at DEBUG
        logged = "".join(output)
        assert SIM_TOKEN not in logged and WIFI_PASSWORD not in logged
