"""An idle technician mid-order gets one reminder, and only one, across a server restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import serve_site
from tests.browser.rig import Site, notices, online, say, sees, sign_in, tap
from tests.browser.test_chat import SERIAL, start_order

pytestmark = pytest.mark.browser

#: The injected idle period: seconds before a reminder, and how often the server looks.
IDLE = "2"
REMINDED = "Still on ORD-1003?"


@pytest.fixture
def quick(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    yield from serve_site(
        tmp_path,
        request,
        TECHASSIST_REMINDER_AFTER=IDLE,
        TECHASSIST_REMINDER_INTERVAL="0.5",
    )


def test_an_idle_technician_is_reminded_once(quick: Site, phone: BrowserContext) -> None:
    page = sign_in(phone, quick, "AB1234")
    start_order(page)
    reminders = notices(page).filter(has_text=REMINDED)
    expect(reminders).to_have_count(1)  # after the idle period, pushed to the open page
    expect(reminders).to_contain_text("status")
    page.wait_for_timeout(3 * int(IDLE) * 1000)  # several more idle periods and scans
    expect(reminders).to_have_count(1)

    # Back to work: the conversation goes on, and a new idle period reminds once more.
    say(page, SERIAL)
    sees(page, "Which ONT model")
    expect(reminders).to_have_count(2)


def test_a_reminder_due_during_a_restart_fires_once_after_it(
    quick: Site, phone: BrowserContext
) -> None:
    page = sign_in(phone, quick, "AB1234")
    sees(page, "Shall we start it?")
    quick.proxy.down = True
    tap(page, "yes")  # the order starts; the server stops right after this turn
    sees(page, "Starting ORD-1003")
    quick.server.stop()
    page.wait_for_timeout(2 * int(IDLE) * 1000)  # due while no server runs
    quick.restart()
    quick.proxy.down = False
    online(page)
    reminders = notices(page).filter(has_text=REMINDED)
    expect(reminders).to_have_count(1)  # found again in the due list after the restart

    quick.restart()  # once more: a reminder already fired is not fired again
    online(page)
    page.wait_for_timeout(3 * int(IDLE) * 1000)
    expect(reminders).to_have_count(1)
    page.reload()  # nothing waits in the outbox either
    online(page)
    sees(page, "ORD-1003")
    expect(reminders).to_have_count(0)
