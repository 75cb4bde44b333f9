"""`/metrics` and `/readyz` of the real server, read the way Prometheus and a load balancer do."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from tests.bridges.server import Server, running, start
from tests.bridges.test_websocket import TIMEOUT, Legacy
from tests.fake_slack import FakeSlack, message_im

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def scrape(server: Server) -> Samples:
    """Every sample of the server's ``/metrics``, by name and labels."""
    status, body = _get(server.http + "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def readyz(server: Server) -> tuple[int, dict[str, Any]]:
    status, body = _get(server.http + "/readyz")
    return status, json.loads(body)


async def test_a_websocket_conversation_moves_the_counters(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        before = await asyncio.to_thread(scrape, server)
        assert value(before, "techassist_turn_seconds_count", bridge="websocket") == 0
        ws = await connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None)
        try:
            client = Legacy(ws)
            await client.ask({"type": "cuid", "data": "AB1234"})
            await client.say("yes")
            # A serial that is not in inventory: activate_ont refuses it.
            refused = await client.say(
                json.dumps({"fsan": "ALCL00000000", "model": "G-240W-F", "ethernet_port": 2})
            )
            assert refused["data_needed"] == "fsan", refused
            await client.say("ALCL90ABCDEF")
            during = await asyncio.to_thread(scrape, server)
        finally:
            await ws.close()
        after = await asyncio.to_thread(scrape, server)

    turns = value(during, "techassist_turn_seconds_count", bridge="websocket")
    assert turns == client.sent == 4
    assert value(during, "techassist_turn_seconds_bucket", bridge="websocket", le="+Inf") == 4
    assert value(during, "techassist_lock_wait_seconds_count") == 4
    assert value(during, "techassist_websocket_connections") == 1
    assert value(after, "techassist_websocket_connections") == 0
    assert value(during, "techassist_active_sessions") == 1
    # Identification looks the technician and the orders up; starting the order runs
    # get_order_details; the unknown serial is refused by activate_ont.
    assert value(during, "techassist_tool_call_seconds_count", tool="get_order_details") == 1
    assert value(during, "techassist_tool_call_seconds_count", tool="activate_ont") >= 1
    assert value(during, "techassist_tool_errors_total", tool="activate_ont", error_kind="refused")
    assert not value(
        during, "techassist_tool_errors_total", tool="get_order_details", error_kind="refused"
    )
    assert value(during, "techassist_slack_connected") == 0
    assert value(during, "techassist_stale_saves_total") == 0
    assert value(during, "techassist_dedupe_hits_total") == 0


async def test_a_slack_event_redelivered_to_a_fresh_instance_is_a_dedupe_hit(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    """The second process has never seen the event: only the stored replies recognise it."""
    env = dict(
        SLACK_BOT_TOKEN=fake_slack.bot_token,
        SLACK_APP_TOKEN=fake_slack.app_token,
        TECHASSIST_SLACK_API_URL=fake_slack.api_url,
        TECHASSIST_SLACK_PING_INTERVAL="0.5",
    )
    first = await asyncio.to_thread(start, tmp_path, **env)
    try:
        await fake_slack.wait_connected()
        envelope = await fake_slack.send_event(message_im("U0ALICE", "hi"))
        await fake_slack.wait_for(lambda: len(fake_slack.posts) == 1, what="the reply")
        metrics = await asyncio.to_thread(scrape, first)
        assert value(metrics, "techassist_turn_seconds_count", bridge="slack") == 1
        assert value(metrics, "techassist_slack_connected") == 1
    finally:
        await asyncio.to_thread(first.stop)
    second = await asyncio.to_thread(start, tmp_path, **env)
    try:
        await fake_slack.wait_for(
            lambda: any(c.closed_at is None for c in fake_slack.connections), what="reconnect"
        )
        event_id = fake_slack.envelope(envelope).event_id
        assert event_id is not None
        await fake_slack.resend_event(event_id)
        await fake_slack.wait_for(lambda: all(e.acked for e in fake_slack.envelopes_sent))
        for _ in range(100):  # bounded: up to ~10 s for the turn to run
            metrics = await asyncio.to_thread(scrape, second)
            if value(metrics, "techassist_dedupe_hits_total"):
                break
            await asyncio.sleep(0.1)
        assert value(metrics, "techassist_dedupe_hits_total") == 1
        assert len(fake_slack.posts) == 1  # answered once, in all
    finally:
        await asyncio.to_thread(second.stop)


def test_readiness_names_a_broken_work_order_database(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        status, body = readyz(server)
        assert status == 200 and body["database"] == "ok" and body["store"] == "ok", body
        # The database file is replaced by a directory under the running process.
        db = tmp_path / "workorders.db"
        os.replace(db, tmp_path / "moved.db")
        db.mkdir()
        status, body = readyz(server)
        assert status == 503 and body["ready"] is False, body
        assert body["database"] != "ok" and "workorders.db" in body["database"], body
        assert body["store"] == "ok"
        # Put back, the instance is ready again.
        db.rmdir()
        shutil.move(tmp_path / "moved.db", db)
        status, body = readyz(server)
        assert status == 200 and body["database"] == "ok", body


@pytest.mark.scale  # two instances: run by `make test-scale`
async def test_two_instances_on_one_store_count_the_stale_save(tmp_path: Path) -> None:
    """Two servers share one SQLite store but not their locks: a turn on the second
    instance saves while the first is inside a slow tool, so the first one's save is stale."""
    slow = {"TECHASSIST_SIM_LATENCY_MS": "1000"}
    with running(tmp_path, **slow) as one, running(tmp_path, **slow) as two:
        opened = [
            await connect(s.url, compression=None, open_timeout=TIMEOUT, proxy=None)
            for s in (one, two)
        ]
        try:
            first, second = (Legacy(ws) for ws in opened)
            await first.ask({"type": "cuid", "data": "AB1234"})
            assert (await first.say("yes"))["data_needed"] == "fsan"
            await second.ask({"type": "cuid", "data": "AB1234"})
            # The ONT's activation takes a second on the first instance...
            await first.send(
                {
                    "type": "message",
                    "data": json.dumps(
                        {"fsan": "ALCL90ABCDEF", "model": "G-240W-F", "ethernet_port": 2}
                    ),
                }
            )
            await asyncio.sleep(0.3)
            # ... while the second instance loads and saves the same session.
            await second.say("status")
            await first.recv()
        finally:
            for ws in opened:
                await ws.close()
        stale_one = value(await asyncio.to_thread(scrape, one), "techassist_stale_saves_total")
        stale_two = value(await asyncio.to_thread(scrape, two), "techassist_stale_saves_total")
    assert (stale_one, stale_two) == (1, 0)
