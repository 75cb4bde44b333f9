"""Two servers on one Redis store: a notice raised on one reaches a page open on the other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.bridges.server import running
from tests.bridges.test_web_chat import QUIET, open_page, sign_in  # noqa: F401 - a fixture
from tests.redis_server import delete_prefix, new_prefix, redis_url

# Two real server processes: a multi-instance scenario, run by `make test-scale`.
pytestmark = pytest.mark.scale


async def test_a_reminder_fired_by_another_instance_is_pushed_to_the_open_page(
    tmp_path: Path,
    open_page: Any,  # noqa: F811 - the fixture
) -> None:
    url, prefix = redis_url(), new_prefix()
    shared = {
        **QUIET,
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
        "TECHASSIST_REMINDER_AFTER": "1",
    }
    try:
        # The page's instance never looks for due reminders (its first look is an hour
        # away); the other one does, often: the notice can only come from there.
        with (
            running(tmp_path, **shared, TECHASSIST_REMINDER_INTERVAL="3600") as holder,
            running(tmp_path, **shared, TECHASSIST_REMINDER_INTERVAL="0.2"),
        ):
            page = await open_page(holder, sign_in(holder, tmp_path))
            await page.hello()
            await page.recv()
            started = await page.tap("yes")
            assert started["where"]["order_id"] == "ORD-1003"
            notice = await page.recv()
            assert notice["type"] == "notice" and notice["kind"] == "reminder"
            assert "Still on ORD-1003?" in notice["text"]
            status = await page.tap("status")  # delivered once: not drained again
            assert not any("Still on" in r["text"] for r in status["replies"])
    finally:
        delete_prefix(url, prefix)
