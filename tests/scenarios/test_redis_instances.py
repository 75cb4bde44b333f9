"""Two TechAssist instances on one Redis store, through the memory bridge.

Each instance is a whole ``build()`` with its own objects; they share only the
Redis store (sessions, answers, leases) and the work-order file, as two
processes on two machines would share Redis and the work-order database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.orchestrator import SORRY
from orchestrator_core.turns import Reply
from tests.conftest import ServicesFactory
from tests.redis_server import delete_prefix, new_prefix, redis_url
from tests.scenarios.helpers import question, said
from tests.scenarios.test_installation import TOP

Instance = Callable[..., Awaitable[Services]]


@pytest.fixture
async def instance(make_services: ServicesFactory, tmp_path: Path) -> AsyncIterator[Instance]:
    """Builds instances on one Redis prefix, one secret key and one work-order file."""
    url, prefix = redis_url(), new_prefix()
    key = Fernet.generate_key().decode()

    async def build(**overrides: Any) -> Services:
        return await make_services(
            tmp_path, store=url, redis_prefix=prefix, secret_key=key, **overrides
        )

    try:
        yield build
    finally:
        delete_prefix(url, prefix)


async def test_an_installation_switching_instance_on_every_turn(instance: Instance) -> None:
    one, two = await instance(), await instance()
    chats = [MemoryBridge(one.orchestrator, "AB1234"), MemoryBridge(two.orchestrator, "AB1234")]
    script = [
        ("AB1234", "yes"),
        ("yes", "fsan"),
        ("alcl90abcdef", "model"),
        ("g-240w-f", "ethernet_port"),
        ("2", "ssid"),
        ("HomeNet", "wifi_password"),
        ("s3cret-passw0rd", "customer_online"),
    ]
    assert question(await chats[0].start()).needs == "cuid"
    for turn, (text, expected) in enumerate(script):
        replies = await chats[turn % 2].say(text)
        asked = question(replies)
        assert (asked.needs or asked.choices[0]) == expected, said(replies)
    done = await chats[1].say("yes")
    assert f"Order {TOP} is closed" in said(done)
    order = await one.workorders.get_order(TOP)
    assert order is not None and order.status == "completed"
    assert not (one.settings.data_dir / "sessions.db").exists()


async def slow_instances(instance: Instance) -> tuple[Services, Services, MemoryBridge]:
    """Two instances whose tools take 0.6 s and whose leases last 0.2 s, never renewed;
    AB1234 has started the installation on the first."""
    one = await instance(lock_lifetime=0.2, sim_latency_ms=600)
    two = await instance(lock_lifetime=0.2, sim_latency_ms=600)
    for services in (one, two):
        services.sessions.locks.renew = False
    chat = MemoryBridge(one.orchestrator, "AB1234")
    await chat.start()
    await chat.say("AB1234")
    await chat.say("yes")
    return one, two, chat


async def after(delay: float, turn: Awaitable[list[Reply]]) -> list[Reply]:
    await asyncio.sleep(delay)
    return await turn


VALUES = "fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2"


async def test_a_redelivery_that_takes_an_expired_lease_gets_the_same_answer(
    instance: Instance,
) -> None:
    one, two, chat = await slow_instances(instance)
    before = await one.store.load(chat.key.as_str())
    assert before is not None
    # The same message reaches both instances. The second takes the lease once it
    # expired, while the first is still in its tool, and runs the turn too.
    first = MemoryBridge(one.orchestrator, "AB1234").say(VALUES, message_id="evt-1")
    again = MemoryBridge(two.orchestrator, "AB1234").say(VALUES, message_id="evt-1")
    a, b = await asyncio.gather(first, after(0.3, again))
    assert SORRY not in said(a) + said(b)
    assert a == b and question(a).needs == "ssid", said(a)
    stored = await one.store.load(chat.key.as_str())
    assert stored is not None and stored.version == before.version + 1


async def test_a_writer_whose_lease_expired_runs_its_turn_again_on_the_fresh_state(
    instance: Instance,
) -> None:
    one, two, chat = await slow_instances(instance)
    before = await one.store.load(chat.key.as_str())
    assert before is not None
    # While the first instance is in its tool, the technician's next message lands on
    # the second, which takes the expired lease and saves first.
    slow = MemoryBridge(one.orchestrator, "AB1234").say(VALUES)
    quick = MemoryBridge(two.orchestrator, "AB1234").say("ssid=HomeNet")
    a, b = await asyncio.gather(slow, after(0.3, quick))
    assert SORRY not in said(a) + said(b)
    # The slow turn ran again on top of the quick one: both updates are kept.
    assert question(a).needs == "wifi_password", said(a)
    stored = await one.store.load(chat.key.as_str())
    assert stored is not None and stored.version == before.version + 2
    values = (await chat.say("status"))[0].data["values"]  # type: ignore[index]
    assert (values["fsan"], values["ethernet_port"], values["ssid"]) == (
        "ALCL90ABCDEF",
        2,
        "HomeNet",
    )
    item = await one.workorders.get_inventory("ALCL90ABCDEF")
    assert item is not None and item.status == "installed"
