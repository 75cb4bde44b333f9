"""A notice lost on the way to the phone comes again when the page reconnects, shown once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import serve_site
from tests.browser.rig import Site, eventually, notices, offline, online, say, sees, sign_in
from tests.browser.test_chat import SERIAL, start_order

pytestmark = pytest.mark.browser

REMINDED = "Still on ORD-1003?"


@pytest.fixture
def quick(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    yield from serve_site(
        tmp_path, request, TECHASSIST_REMINDER_AFTER="2", TECHASSIST_REMINDER_INTERVAL="0.5"
    )


def pushed(data_dir: Path) -> int:
    """How many notices the server has pushed to Alice's web conversation."""
    with sqlite3.connect(f"file:{data_dir / 'sessions.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT data FROM sessions WHERE key LIKE '%web%AB1234'",
        ).fetchone()
    return len(json.loads(row[0]).get("delivered", [])) if row else 0


def test_a_notice_lost_with_the_connection_arrives_after_the_reconnect(
    quick: Site, phone: BrowserContext
) -> None:
    page = sign_in(phone, quick, "AB1234")
    start_order(page)
    reminders = notices(page).filter(has_text=REMINDED)
    expect(reminders).to_have_count(1)  # the first idle period: seen
    say(page, SERIAL)
    sees(page, "Which ONT model")

    # The next reminder leaves the server, and is lost on the way; then the socket dies.
    quick.proxy.mute = True
    eventually(lambda: pushed(quick.data_dir) == 2)
    quick.proxy.down = True
    quick.proxy.cut()
    quick.proxy.mute = False
    offline(page)
    expect(reminders).to_have_count(1)
    quick.proxy.down = False
    online(page)
    expect(reminders).to_have_count(2)  # sent again after the last one the page saw

    # A reload keeps the last notice id seen: what comes again is only what it lost
    # (nothing now), before the greeting says where things stand.
    page.reload()
    online(page)
    sees(page, "ORD-1003")
    expect(reminders).to_have_count(0)
