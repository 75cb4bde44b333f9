"""The console on one instance, the technician on another: two servers sharing a Redis
session store and a PostgreSQL work-order database, as a deployment runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bridges.web.console import COOKIE
from tests.bot.live import techassist
from tests.bridges.server import running
from tests.bridges.test_console import (
    OPERATOR,
    PASSWORD,
    Events,
    Technician,
    client,
    page_csrf,
    sign_in,
)
from tests.orchestrator_core.workorders.backends import empty_postgres_url
from tests.redis_server import delete_prefix, new_prefix, redis_url

__all__ = ["empty_postgres_url"]  # a fixture

# Two real server processes: a multi-instance scenario, run by `make test-scale`.
pytestmark = pytest.mark.scale


@pytest.fixture
def shared(empty_postgres_url: str) -> Iterator[dict[str, str]]:
    url, prefix = redis_url(), new_prefix()
    try:
        yield {
            "TECHASSIST_STORE": url,
            "TECHASSIST_REDIS_PREFIX": prefix,
            "TECHASSIST_DATABASE_URL": empty_postgres_url,
            "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
        }
    finally:
        delete_prefix(url, prefix)


async def test_a_console_on_one_instance_reaches_a_technician_on_another(
    tmp_path: Path, shared: dict[str, str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for args in (("db", "upgrade"), ("operators", "add", OPERATOR, "--password-stdin")):
        done = techassist(first, *args, stdin=PASSWORD + "\n", **shared)
        assert done.returncode == 0, done.stdout + done.stderr
    with running(first, **shared) as one, running(second, **shared) as two:
        async with Technician(one, "AB1234") as technician, client(two) as console:
            escalation = await technician.escalate()
            assert (await sign_in(console)).status_code == 303
            async with console.stream("GET", "/ops/events") as response:
                events = Events(response)
                await events.until(
                    "sessions",
                    lambda d: any(
                        s["cuid"] == "AB1234" and s["bridge"] == "websocket" for s in d["sessions"]
                    ),
                )
                await events.until(
                    "queue", lambda d: any(e["id"] == escalation for e in d["escalations"])
                )
            csrf = {"X-CSRF-Token": await page_csrf(console)}
            path = f"/ops/api/escalations/{escalation}"
            assert (await console.post(f"{path}/take", json={}, headers=csrf)).status_code == 200
            answered = await console.post(
                f"{path}/answer", json={"text": "Fiber crew is on the way."}, headers=csrf
            )
            assert answered.status_code == 200, answered.text
            frame = await technician.say("status")
            assert frame["message"].startswith(
                f"From the dispatcher ({OPERATOR}) about ORD-1003: Fiber crew is on the way."
            ), frame
            cookie = console.cookies[COOKIE]
        async with client(one) as elsewhere:  # the first instance accepts the second's cookie
            elsewhere.cookies.set(COOKIE, cookie, domain="127.0.0.1", path="/ops")
            queue = (await elsewhere.get("/ops/api/escalations")).json()["escalations"]
            assert [e["status"] for e in queue if e["id"] == escalation] == ["answered"]
