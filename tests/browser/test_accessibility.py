"""axe-core in the browser: no serious or critical violation on the chat and console pages."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Page

from tests.browser.rig import Site, link_token, ops_sign_in, say, sees, sign_in
from tests.browser.test_chat import SERIAL, start_order

pytestmark = pytest.mark.browser

SERIOUS = ("serious", "critical")


def serious(page: Page) -> list[str]:
    """The serious and critical violations axe-core finds on the page, one line each."""
    found: dict[str, Any] = Axe().run(page).response
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"])
        for v in found["violations"]
        if v["impact"] in SERIOUS
    ]


def test_the_chat_page_mid_order(web: Site, phone: BrowserContext) -> None:
    page = sign_in(phone, web, "AB1234")
    start_order(page)
    say(page, SERIAL)
    sees(page, "Which ONT model")  # choice buttons on screen
    assert serious(page) == []
    page.locator("#status-btn").click()
    assert serious(page) == []


def test_the_signin_page(web: Site, phone: BrowserContext) -> None:
    page = phone.new_page()
    page.route("**/static/signin.js", lambda route: route.abort())  # stay on the page
    page.goto(f"{web.url}/signin?t={link_token(web.data_dir, 'AB1234')}")
    assert serious(page) == []


def test_the_console_login_page(web: Site, desk: BrowserContext) -> None:
    page = desk.new_page()
    page.goto(f"{web.url}/ops/login")
    assert serious(page) == []


def test_the_console_with_an_escalation_open(
    web: Site, operator: tuple[str, str], phone: BrowserContext, desk: BrowserContext
) -> None:
    tech = sign_in(phone, web, "AB1234")
    start_order(tech)
    say(tech, "escalate")
    sees(tech, "I've escalated ORD-1003")
    ops = ops_sign_in(desk, web, *operator)
    item = ops.locator("#queue li[data-id]").first
    item.locator("button").click()
    ops.locator("#escalation").wait_for()
    assert serious(ops) == []
