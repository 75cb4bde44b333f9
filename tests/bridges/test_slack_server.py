"""`techassist serve` with Slack tokens: the real server process against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.bridges.server import Server, start
from tests.fake_slack import FakeSlack, message_im


async def start_with_slack(tmp_path: Path, fake: FakeSlack) -> Server:
    """Start `techassist serve` with Slack's two tokens, pointed at the fake."""
    return await asyncio.to_thread(
        start,
        tmp_path,
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_APP_TOKEN=fake.app_token,
        TECHASSIST_SLACK_API_URL=fake.api_url,
        TECHASSIST_SLACK_PING_INTERVAL="0.5",
    )


def _readyz(http: str) -> tuple[int, dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(http + "/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_serve_connects_to_slack_when_both_tokens_are_set(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    server = await start_with_slack(tmp_path, fake_slack)
    try:
        await fake_slack.wait_connected()
        status, body = await asyncio.to_thread(_readyz, server.http)
        assert status == 200 and body["slack"] == "connected"
        await fake_slack.send_event(message_im("U0ALICE", "hi"))
        await fake_slack.wait_for(lambda: fake_slack.posts, what="the server's reply")
        assert "ORD-1003" in fake_slack.posts[0]["text"]
        assert fake_slack.bot_token not in "".join(server.output)
        assert fake_slack.app_token not in "".join(server.output)
    finally:
        await asyncio.to_thread(server.stop)
    assert "Traceback" not in "".join(server.output)


async def test_readiness_reports_a_lost_slack_connection(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.max_retries = 0
    server = await start_with_slack(tmp_path, fake_slack)
    try:
        await fake_slack.wait_connected()
        fake_slack.fail("apps.connections.open", "internal_error", times=1000)
        await fake_slack.drop()
        for _ in range(100):  # bounded: up to ~10 s for the client to notice
            status, body = await asyncio.to_thread(_readyz, server.http)
            if body["slack"] == "disconnected":
                break
            await asyncio.sleep(0.1)
        assert status == 503 and body["slack"] == "disconnected" and body["ready"] is False
    finally:
        await asyncio.to_thread(server.stop)


def test_without_slack_tokens_readiness_says_slack_is_off(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        status, body = _readyz(server.http)
        assert status == 200 and body["slack"] == "off"
    finally:
        server.stop()
