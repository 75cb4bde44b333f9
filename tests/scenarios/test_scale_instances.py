"""Two real ``techassist serve`` processes on one Redis session store and one PostgreSQL database.

The servers share only what two machines behind a load balancer would: a Redis key
prefix (sessions, leases, owners), the secret key, and a PostgreSQL database of the
test's own for the work orders and the tool audit, filled as an operator fills it
(``techassist db upgrade``, then ``techassist orders import``). Clients are real
websocket clients speaking the legacy protocol; each scenario checks what the
technicians would notice and what the database ends up holding; how long they take
is measured, never asserted (a hundred conversations take about a minute here).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from websockets.asyncio.client import connect

from orchestrator_core.orchestrator import SORRY
from orchestrator_core.pg.workorders import PostgresWorkOrders
from orchestrator_core.simulator import MODELS, TIERS, light_cause
from tests.bot.live import techassist
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, Legacy
from tests.orchestrator_core.workorders.backends import empty_postgres_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

__all__ = ["empty_postgres_url"]

pytestmark = pytest.mark.scale

Frame = dict[str, Any]

#: Conversations at once, each switching server on every message.
CONVERSATIONS = 100
#: Messages each conversation sends after identifying.
MESSAGES = 20
#: Turns in flight at once over all conversations: enough to interleave them, few
#: enough that two servers on two shared cores answer each well within the timeout.
IN_FLIGHT = 16


# ---------------------------------------------------------------------------- two servers


@contextmanager
def two_servers(
    tmp_path: Path, database_url: str, data: dict[str, Any]
) -> Iterator[tuple[Server, Server]]:
    """Import ``data`` into the database, then run two servers sharing it and one Redis prefix."""
    url, prefix = redis_url(), new_prefix()
    env = {"TECHASSIST_DATABASE_URL": database_url}
    (tmp_path / "orders.json").write_text(json.dumps(data))
    for command in (("db", "upgrade"), ("orders", "import", "orders.json")):
        done = techassist(tmp_path, *command, **env)
        assert done.returncode == 0, done.stderr
    env |= {
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
        "TECHASSIST_SEED_DEMO": "false",
    }
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    try:
        with running(tmp_path / "one", **env) as one, running(tmp_path / "two", **env) as two:
            yield one, two
    finally:
        delete_prefix(url, prefix)


@asynccontextmanager
async def work_orders(database_url: str) -> AsyncIterator[PostgresWorkOrders]:
    """The shared database as the servers see it, to check what they left in it."""
    db = await PostgresWorkOrders.open(database_url, min_size=1, max_size=2)
    try:
        yield db
    finally:
        await db.aclose()


@asynccontextmanager
async def legacy_client(server: Server) -> AsyncIterator[Legacy]:
    """A connection speaking like the legacy client, closed on leaving.

    Each message of the first scenario has one of its own: that is how a client
    behind a load balancer moves from one server to the other.
    """
    # proxy=None: a developer's HTTP(S)_PROXY must not swallow loopback traffic.
    async with connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        yield Legacy(ws)


def no_apology(frame: Frame) -> Frame:
    """``frame``, after checking it is not an apology for a failure of ours."""
    assert SORRY not in frame["message"] and "went wrong" not in frame["message"], frame
    return frame


def question(frame: Frame) -> str:
    """The frame's last line: the question the technician has to answer next."""
    lines: list[str] = frame["message"].splitlines()
    return lines[-1]


# ------------------------------------------------------------------------- generated data


def good_serials() -> Iterator[str]:
    """ONT serials with good light, so no installation stops at the light check."""
    serials = (f"ALCL{n:08X}" for n in count(1))
    return (serial for serial in serials if light_cause(serial) is None)


@dataclass(frozen=True)
class Installation:
    """An installation order and the values the technician gives for it."""

    order_id: str
    serial: str
    model: str
    port: int
    ssid: str
    password: str


@dataclass(frozen=True)
class Technician:
    cuid: str
    installations: tuple[Installation, ...]


def technicians(number: int, serials: Iterator[str]) -> list[Technician]:
    """``number`` technicians with three installations each, most urgent first."""
    crew = []
    for n in range(1, number + 1):
        jobs = tuple(
            Installation(
                order_id=f"ORD-S{n:03d}-{k}",
                serial=next(serials),
                model=MODELS[(n + k) % len(MODELS)],
                port=1 + (n + k) % 4,
                ssid=f"Home {n}-{k}",
                password=f"pass-{n:03d}-{k}-word",
            )
            for k in range(1, 4)
        )
        crew.append(Technician(f"SC{n:04d}", jobs))
    return crew


def import_data(crew: list[Technician]) -> dict[str, Any]:
    """The crew, its orders and its ONTs in the import format."""
    tiers = list(TIERS)
    orders, inventory = [], []
    for tech in crew:
        for k, job in enumerate(tech.installations):
            orders.append(
                {
                    "order_id": job.order_id,
                    "cuid": tech.cuid,
                    "order_type": "installation",
                    "status": "assigned",
                    "scheduled_start": f"2026-12-02T{9 + 2 * k:02d}:00:00Z",
                    "created_at": "2026-11-20T08:00:00Z",
                    "customer_name": f"Customer of {job.order_id}",
                    "address": f"{k + 1} Fiber Street",
                    "service_tier": tiers[k % len(tiers)],
                }
            )
            inventory.append({"serial": job.serial, "model": job.model, "status": "available"})
    people = [{"cuid": tech.cuid, "name": f"Tech {tech.cuid}"} for tech in crew]
    return {"technicians": people, "orders": orders, "inventory": inventory}


# ----------------------------------------------------------------------------- the script


@dataclass(frozen=True)
class Step:
    """A message and what the reply to it must show."""

    text: str
    check: Callable[[Frame], None]


def asks(needs: str, *shown: str) -> Callable[[Frame], None]:
    """The reply asks for ``needs`` and says each of ``shown``."""

    def check(frame: Frame) -> None:
        assert frame.get("data_needed") == needs, frame
        assert all(text in frame["message"] for text in shown), frame

    return check


def proposes(order_id: str) -> Callable[[Frame], None]:
    def check(frame: Frame) -> None:
        assert frame["data"]["order"]["order_id"] == order_id, frame
        assert frame["choices"] == ["yes", "no"], frame

    return check


def closes(order_id: str) -> Callable[[Frame], None]:
    def check(frame: Frame) -> None:
        assert f"Order {order_id} is closed" in frame["message"], frame
        assert frame["choices"] == ["next", "help", "end"], frame

    return check


def shows(needs: str, **values: Any) -> Callable[[Frame], None]:
    """A ``status`` reply: the values given so far, and the same question again."""

    def check(frame: Frame) -> None:
        assert frame.get("data_needed") == needs, frame
        kept = {name: frame["data"]["values"].get(name) for name in values}
        assert kept == values, frame

    return check


def install(job: Installation, then: str | None) -> list[Step]:
    """A whole installation with a ``status`` on the way, closed, then on to ``then``."""
    steps = [
        Step("yes", asks("fsan", f"Starting {job.order_id}")),
        Step(job.serial, asks("model")),
        Step(job.model, asks("ethernet_port")),
        Step(str(job.port), asks("ssid", f"ONT {job.serial} ({job.model}) is active")),
        Step(job.ssid, asks("wifi_password")),
        Step(job.password, asks("customer_online", f'Wi-Fi "{job.ssid}" is set up')),
        Step("yes", closes(job.order_id)),
    ]
    if then is not None:
        steps.append(Step("next", proposes(then)))
    return steps


def script(tech: Technician) -> list[Step]:
    """Two installations closed and a third begun: twenty messages, three of them ``status``."""
    first, second, third = tech.installations
    steps = install(first, second.order_id)
    steps.insert(5, Step("status", shows("wifi_password", fsan=first.serial, ssid=first.ssid)))
    steps += install(second, third.order_id)
    steps += [
        Step("yes", asks("fsan", f"Starting {third.order_id}")),
        Step(third.serial, asks("model")),
        Step("status", shows("model", fsan=third.serial)),
    ]
    assert len(steps) == MESSAGES
    return steps


# ------------------------------------------------------------------- every turn elsewhere


async def one_turn(server: Server, cuid: str, text: str) -> tuple[Frame, Frame]:
    """A connection of its own for one message: where the session stands, then the reply."""
    async with legacy_client(server) as client:
        where = no_apology(await client.ask({"type": "cuid", "data": cuid}))
        return where, no_apology(await client.say(text))


async def converse(
    servers: tuple[Server, Server], tech: Technician, first: int, gate: asyncio.Semaphore
) -> None:
    """Follow the script, each message on the other server than the one before."""
    previous: Frame | None = None
    for number, step in enumerate(script(tech)):
        async with gate:
            where, reply = await one_turn(servers[(first + number) % 2], tech.cuid, step.text)
        if previous is None:
            proposes(tech.installations[0].order_id)(where)
        else:  # the other server goes on exactly where the last one stopped
            assert question(where) == question(previous), (where, previous)
            assert where.get("data_needed") == previous.get("data_needed"), (where, previous)
        step.check(reply)
        previous = reply


async def test_a_hundred_conversations_switching_server_on_every_message(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    crew = technicians(CONVERSATIONS, good_serials())
    with two_servers(tmp_path, empty_postgres_url, import_data(crew)) as servers:
        gate = asyncio.Semaphore(IN_FLIGHT)
        async with asyncio.TaskGroup() as group:
            for n, tech in enumerate(crew):
                group.create_task(converse(servers, tech, n % 2, gate))
    async with work_orders(empty_postgres_url) as db:
        rows = await db.audit_log().audit_rows()
        for tech in crew:
            done, begun = tech.installations[:2], tech.installations[2]
            for job in done:
                order = await db.get_order(job.order_id)
                assert order is not None and order.status == "completed", order
                item = await db.get_inventory(job.serial)
                assert item is not None and (item.status, item.order_id) == (
                    "installed",
                    job.order_id,
                )
            order = await db.get_order(begun.order_id)
            assert order is not None and order.status == "in_progress", order
    assert [row for row in rows if not row["ok"]] == []
    runs = Counter((row["order_id"], row["tool"]) for row in rows)
    for tech in crew:
        for job in tech.installations[:2]:
            for tool in ("activate_ont", "configure_wifi", "close_order"):
                assert runs[job.order_id, tool] == 1, (job.order_id, tool, runs[job.order_id, tool])


# ------------------------------------------------------------ one serial, two technicians


async def test_two_technicians_on_two_servers_give_the_same_serial_at_once(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    serials = good_serials()
    shared, spare = next(serials), next(serials)
    crew = [
        Technician(cuid, (Installation(order_id, "", "G-240W-F", 1, "", ""),))
        for cuid, order_id in (("SA0001", "ORD-A1"), ("SB0002", "ORD-B1"))
    ]
    data = import_data(crew)
    data["inventory"] = [
        {"serial": serial, "model": "G-240W-F", "status": "available"} for serial in (shared, spare)
    ]
    values = f"fsan={shared} model=G-240W-F ethernet_port=1"
    with two_servers(tmp_path, empty_postgres_url, data) as (one, two):
        async with legacy_client(one) as first, legacy_client(two) as second:
            for client, tech in ((first, crew[0]), (second, crew[1])):
                proposes(tech.installations[0].order_id)(
                    await client.ask({"type": "cuid", "data": tech.cuid})
                )
                asks("fsan")(no_apology(await client.say("yes")))
            replies = await asyncio.gather(first.say(values), second.say(values))
            installed = [reply.get("data_needed") == "ssid" for reply in map(no_apology, replies)]
            assert sorted(installed) == [False, True], replies
            winner = installed.index(True)
            refused = replies[1 - winner]
            # Told why, in words, and asked for another serial (model and port are kept).
            assert refused["data_needed"] == "fsan", refused
            assert shared in refused["message"] and (
                "already installed on another order" in refused["message"]
                or "was just taken" in refused["message"]
            ), refused
            loser = (first, second)[1 - winner]
            asks("ssid", f"ONT {spare} (G-240W-F) is active")(no_apology(await loser.say(spare)))
    orders = [tech.installations[0].order_id for tech in crew]
    async with work_orders(empty_postgres_url) as db:
        taken, other = await db.get_inventory(shared), await db.get_inventory(spare)
        rows = await db.audit_log().audit_rows()
    assert taken is not None and (taken.status, taken.order_id) == ("installed", orders[winner])
    assert other is not None and (other.status, other.order_id) == ("installed", orders[1 - winner])
    activations = [
        row["args"]["fsan"] for row in rows if row["tool"] == "activate_ont" and row["ok"]
    ]
    assert sorted(activations) == sorted([shared, spare])
