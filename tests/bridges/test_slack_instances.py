"""Slack on two real servers: events spread at random, retries landing on the other instance.

Two ``techassist serve`` processes share one Redis session store (a prefix of the test's own)
and one PostgreSQL work-order database (a database of the test's own), and each holds a Socket
Mode connection to the fake Slack. Several technicians, each mapped by Slack user id, run a
whole installation over direct messages at once. Every event goes to a random connection, and
some are redelivered on the other one, as Slack retries an event it thinks was lost: at once,
while the first delivery may still be running; after it was acked; or after it was answered,
racing the technician's next message.

The plan of who sends what where comes from one seed, printed with the test's output and
taken from ``TECHASSIST_TEST_SEED`` when set, so a failure can be replayed.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from bench.core import dataset, good_serials
from orchestrator_core.importer import import_data
from orchestrator_core.orchestrator import SORRY
from orchestrator_core.pg.migrate import upgrade
from orchestrator_core.pg.workorders import PostgresWorkOrders
from tests.bridges.server import Server, start
from tests.fake_slack import Connection, FakeSlack, message_im
from tests.orchestrator_core.workorders.backends import empty_postgres_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

pytestmark = pytest.mark.scale
__all__ = ["empty_postgres_url"]  # a fixture

TECHNICIANS = 12
REDELIVERED = 0.3
"""The share of events Slack sends a second time, on the other connection."""
IGNORED = "ignored a redelivered Slack event"
"""What a server logs when it recognises an event another delivery already ran."""
TIMEOUT = 30.0
"""Seconds one reply (or the servers' start) may take at most on a busy machine."""


@dataclass(frozen=True)
class Line:
    """One message of a technician's conversation, and what its reply must say."""

    text: str
    expect: str


def script(order_id: str, serial: str) -> list[Line]:
    """A whole installation, from the greeting to closing the order and saying goodbye."""
    return [
        Line("hi", order_id),
        Line("yes", "FSAN"),
        Line(f"fsan={serial} model=716GE ethernet_port=2", "is active"),
        Line("ssid=Lab wifi_password=correct-horse", "online"),
        Line("yes", f"Order {order_id} is closed"),
        Line("end", "Orders completed this session"),
    ]


AT_ONCE, AFTER_ACK, AFTER_REPLY = "at once", "after the ack", "after the reply"
"""When a retry comes: while the first delivery may still be running, once it was acked, or
once it was answered, racing the technician's next message."""


@dataclass(frozen=True)
class Delivery:
    """Where one message goes: which connection first, and whether and when it comes again."""

    first: int
    """0 or 1: the first or the second server's connection."""
    again: str | None
    """``None``, or when the retry goes to the other connection."""


def plan(seed: int, technicians: int, lines: int) -> list[list[Delivery]]:
    """Every message's delivery, drawn up front, so the concurrency cannot reorder the draws."""
    rng = random.Random(seed)

    def draw() -> Delivery:
        first, again = rng.randrange(2), rng.choice((AT_ONCE, AFTER_ACK, AFTER_REPLY))
        return Delivery(first, again if rng.random() < REDELIVERED else None)

    return [[draw() for _ in range(lines)] for _ in range(technicians)]


def user_id(i: int) -> str:
    return f"UTECH{i:03d}"


def channel_id(i: int) -> str:
    return f"DTECH{i:03d}"


@dataclass(frozen=True)
class WorkOrders:
    """The shared work-order database and what the test loaded into it."""

    url: str
    orders: list[str]
    serials: list[str]
    """The ONT each order is to get, by the same index."""


@pytest.fixture
async def work_orders(empty_postgres_url: str) -> WorkOrders:
    """A database of the test's own, upgraded as ``techassist db upgrade`` does, holding one
    technician with a Slack id, one installation order and one good ONT per conversation."""
    await upgrade(empty_postgres_url)
    serials = good_serials(TECHNICIANS)
    data = dataset(serials)
    for i, technician in enumerate(data["technicians"]):
        technician["slack_user_id"] = user_id(i)
    db = await PostgresWorkOrders.open(empty_postgres_url, min_size=1, max_size=1)
    try:
        await import_data(db, data)
    finally:
        await db.aclose()
    return WorkOrders(empty_postgres_url, [order["order_id"] for order in data["orders"]], serials)


@pytest.fixture
def sessions_prefix() -> Iterator[tuple[str, str]]:
    """The Redis server and a key prefix of the test's own, deleted after."""
    url, prefix = redis_url(), new_prefix()
    try:
        yield url, prefix
    finally:
        delete_prefix(url, prefix)


@pytest.fixture
def secret_key() -> str:
    """The key both servers encrypt sensitive session values with: one for all instances."""
    return Fernet.generate_key().decode()


@pytest.fixture
async def servers(
    tmp_path: Path,
    fake_slack: FakeSlack,
    work_orders: WorkOrders,
    sessions_prefix: tuple[str, str],
    secret_key: str,
) -> AsyncIterator[tuple[Server, Server]]:
    """Two servers on the shared stores, each connected to the fake Slack, stopped after."""
    redis, prefix = sessions_prefix
    env = {
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_APP_TOKEN": fake_slack.app_token,
        "TECHASSIST_SLACK_API_URL": fake_slack.api_url,
        # Every reply is then one post, whatever the load: no progress line to update.
        "TECHASSIST_SLACK_PROGRESS_AFTER": "60",
        "TECHASSIST_STORE": redis,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": secret_key,
        "TECHASSIST_DATABASE_URL": work_orders.url,
        "TECHASSIST_SEED_DEMO": "false",
        # Tools that take a moment, so a redelivery often arrives while its turn still runs.
        "TECHASSIST_SIM_LATENCY_MS": "50",
    }
    started: list[Server] = []
    try:
        for n, name in enumerate(("one", "two"), start=1):
            (tmp_path / name).mkdir()
            started.append(await asyncio.to_thread(start, tmp_path / name, **env))
            await fake_slack.wait_connected(count=n, timeout=TIMEOUT)
        yield started[0], started[1]
    finally:
        for server in started:
            await asyncio.to_thread(server.stop)


async def converse(
    fake: FakeSlack, sockets: list[Connection], i: int, lines: list[Line], plan: list[Delivery]
) -> list[str]:
    """Technician ``i``'s conversation, one message at a time; the replies as they read now."""
    channel = channel_id(i)
    replies: list[str] = []
    for line, delivery in zip(lines, plan, strict=True):
        before = len([p for p in fake.posts if p["channel"] == channel])
        first = await fake.send_event(
            message_im(user_id(i), line.text, channel=channel), connection=sockets[delivery.first]
        )
        other = sockets[1 - delivery.first]
        if delivery.again == AFTER_ACK:
            await fake.wait_for(lambda: fake.envelope(first).acked, timeout=TIMEOUT)  # noqa: B023
        if delivery.again in (AT_ONCE, AFTER_ACK):
            await fake.redeliver(first, connection=other)
        posts = await fake.wait_for(
            lambda: [p for p in fake.posts if p["channel"] == channel][before:],  # noqa: B023
            timeout=TIMEOUT,
            what=f"the reply to {line.text!r} in {channel}",
        )
        replies.append(str(fake.messages[(channel, posts[0]["ts"])]["text"]))
        if delivery.again == AFTER_REPLY:
            await fake.redeliver(first, connection=other)
    return replies


async def test_every_conversation_completes_with_one_reply_per_message(
    fake_slack: FakeSlack,
    servers: tuple[Server, Server],
    work_orders: WorkOrders,
    secret_key: str,
) -> None:
    seed = int(os.environ.get("TECHASSIST_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"seed {seed}: rerun with TECHASSIST_TEST_SEED={seed}")
    orders = work_orders.orders
    scripts = [script(o, serial) for o, serial in zip(orders, work_orders.serials, strict=True)]
    deliveries = plan(seed, TECHNICIANS, len(scripts[0]))
    sockets = fake_slack.open_connections
    assert len(sockets) == 2

    replies = await asyncio.gather(
        *(converse(fake_slack, sockets, i, scripts[i], deliveries[i]) for i in range(TECHNICIANS))
    )

    await fake_slack.wait_for(
        lambda: all(e.acked for e in fake_slack.envelopes_sent),
        timeout=TIMEOUT,
        what="every envelope's ack",
    )
    # Each extra delivery of an event is recognised by whichever server gets it second; once
    # every one is, no turn is left running that could still post.
    unrecognised = await settle(fake_slack, servers)
    for i, (lines, got) in enumerate(zip(scripts, replies, strict=True)):
        for line, reply in zip(lines, got, strict=True):
            assert line.expect in reply, (seed, channel_id(i), line.text, reply)
            assert SORRY not in reply, (seed, channel_id(i), line.text, reply)
        posted = [p["text"] for p in fake_slack.posts if p["channel"] == channel_id(i)]
        assert len(posted) == len(lines), (seed, channel_id(i), posted)
    assert await order_statuses(work_orders.url) == dict.fromkeys(orders, "completed")
    runs = await tool_runs(work_orders.url)
    assert sorted(runs) == orders, seed
    for order_id, tools in runs.items():
        assert {"activate_ont", "close_order"} <= set(tools), (seed, order_id, tools)
        assert set(tools.values()) == {1}, (seed, order_id, tools)  # no turn ran twice
    redelivered = [
        [e.connection for e in fake_slack.envelopes_for(event_id)]
        for event_id in {e.event_id or "" for e in fake_slack.envelopes_sent if e.retry_attempt}
    ]
    assert redelivered and all(len(set(c)) > 1 for c in redelivered), (seed, redelivered)
    assert unrecognised == {}, (seed, "event id: (times recognised, deliveries after the first)")
    secret = (fake_slack.bot_token, fake_slack.app_token, secret_key)
    for server in servers:
        output = "".join(server.output)
        assert not any(token in output for token in secret), seed
        assert "Traceback" not in output, (seed, output[-3000:])


async def settle(fake: FakeSlack, servers: tuple[Server, Server]) -> dict[str, tuple[int, int]]:
    """Wait until the servers' logs name each event once for every delivery after its first,
    or ``TIMEOUT`` seconds; the events they do not, with (times named, times expected)."""
    extra: dict[str, int] = {}
    for envelope in fake.envelopes_sent:
        if envelope.event_id is not None:
            extra[envelope.event_id] = extra.get(envelope.event_id, -1) + 1

    def unrecognised() -> dict[str, tuple[int, int]]:
        output = "".join("".join(server.output) for server in servers)
        counts = {event_id: output.count(f"{IGNORED} {event_id}") for event_id in extra}
        return {e: (n, extra[e]) for e, n in counts.items() if n != extra[e]}

    for _ in range(int(TIMEOUT * 10)):  # the logs are read by threads: look every 0.1 s
        if not unrecognised():
            break
        await asyncio.sleep(0.1)
    return unrecognised()


async def order_statuses(url: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT order_id, status FROM orders ORDER BY order_id")
        return {order_id: status for order_id, status in await cur.fetchall()}


async def tool_runs(url: str) -> dict[str, dict[str, int]]:
    """How often each tool succeeded on each order, from the audit the inner agent keeps."""
    runs: dict[str, dict[str, int]] = {}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT order_id, tool, count(*) FROM audit"
            " WHERE ok AND order_id IS NOT NULL GROUP BY order_id, tool"
        )
        for order_id, tool, count in await cur.fetchall():
            runs.setdefault(order_id, {})[tool] = count
    return runs
