"""A technician escalates; a dispatcher in another browser takes it, answers and hands it back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.rig import (
    PHONE,
    WAIT_MS,
    Site,
    at_step,
    new_context,
    notices,
    offline,
    online,
    ops_sign_in,
    say,
    sees,
    sign_in,
    tap,
)
from tests.browser.test_chat import SERIAL, start_order

pytestmark = pytest.mark.browser

ANSWER = "The fiber crew re-spliced the drop at the pole: carry on with the G-240W-F."


def escalation(ops: Page, cuid: str) -> Page:
    """Open the first escalation of ``cuid`` in the queue; returns the page."""
    item = ops.locator("#queue li[data-id]", has_text=cuid).first
    expect(item).to_be_visible(timeout=WAIT_MS)
    item.locator("button").first.click()
    expect(ops.locator("#escalation")).to_be_visible()
    return ops


def test_a_dispatcher_answers_and_hands_back_and_the_technician_finishes_the_order(
    web: Site, operator: tuple[str, str], phone: BrowserContext, desk: BrowserContext
) -> None:
    tech = sign_in(phone, web, "AB1234")
    start_order(tech)
    say(tech, SERIAL)
    sees(tech, "Which ONT model")
    say(tech, "escalate")
    sees(tech, "I've escalated ORD-1003 to a human")

    ops = ops_sign_in(desk, web, *operator)
    # The live sessions table shows the technician's web conversation.
    expect(ops.locator("#sessions tr[data-key]", has_text="AB1234")).to_be_visible()
    escalation(ops, "AB1234")
    panel = ops.locator("#escalation")
    expect(panel).to_contain_text("ORD-1003")
    expect(panel).to_contain_text(SERIAL)  # the parameters so far
    expect(ops.locator("#queue li[data-status=open]", has_text="AB1234")).to_be_visible()

    panel.locator("button[name=take]").click()
    expect(ops.locator("#queue li[data-status=taken]", has_text="AB1234")).to_be_visible()
    panel.locator("textarea[name=answer]").fill(ANSWER)
    panel.locator("button[name=send]").click()
    expect(ops.locator("#queue li[data-status=answered]", has_text="AB1234")).to_be_visible()

    # The idle technician's page shows the answer without asking for it.
    expect(notices(tech).filter(has_text=ANSWER)).to_have_count(1)

    panel.locator("button[name=handback]").click()
    expect(notices(tech).filter(has_text="ORD-1003")).not_to_have_count(0)
    tap(tech, "next")
    sees(tech, "ORD-1003 is back with you from the dispatcher")
    tap(tech, "yes")
    # Resumed at the parked step, the serial kept: the model is the next question.
    at_step(tech, 2, 7)
    sees(tech, "Which ONT model")
    tap(tech, "G-240W-F")
    say(tech, "2")
    sees(tech, f"ONT {SERIAL} (G-240W-F) is active")
    say(tech, "Lovelace")
    say(tech, "lantern-by-the-door")
    sees(tech, "Speed test passed")
    tap(tech, "yes")
    sees(tech, "Order ORD-1003 is closed")

    # The dispatcher's audit view shows the order's tool calls.
    ops.locator("#audit-order").fill("ORD-1003")
    ops.locator("#audit-form button[type=submit]").click()
    expect(ops.locator("#audit-entries tbody tr", has_text="close_order")).to_have_count(1)


def test_the_console_fits_a_phone(
    web: Site, operator: tuple[str, str], phone: BrowserContext, browser: Browser
) -> None:
    tech = sign_in(phone, web, "AB1234")
    start_order(tech)
    say(tech, "escalate")
    sees(tech, "I've escalated ORD-1003")
    pocket = new_context(browser, PHONE, phone=True)
    try:
        ops = ops_sign_in(pocket, web, *operator)
        escalation(ops, "AB1234")
        expect(ops.locator("#escalation button[name=take]")).to_be_visible()
        # Wide tables scroll in their own box; the page itself does not scroll sideways.
        assert ops.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        pocket.close()


def test_an_answer_sent_while_the_technician_is_offline_arrives_once_on_reconnect(
    web: Site, operator: tuple[str, str], phone: BrowserContext, desk: BrowserContext
) -> None:
    tech = sign_in(phone, web, "AB1234")
    start_order(tech)
    say(tech, "escalate")
    sees(tech, "I've escalated ORD-1003")
    ops = ops_sign_in(desk, web, *operator)
    panel = escalation(ops, "AB1234").locator("#escalation")
    panel.locator("button[name=take]").click()
    expect(ops.locator("#queue li[data-status=taken]", has_text="AB1234")).to_be_visible()

    web.proxy.down = True
    web.proxy.cut()  # the technician's phone loses the network
    offline(tech)
    panel.locator("textarea[name=answer]").fill(ANSWER)
    panel.locator("button[name=send]").click()
    expect(ops.locator("#queue li[data-status=answered]", has_text="AB1234")).to_be_visible()
    expect(notices(tech).filter(has_text=ANSWER)).to_have_count(0)

    web.proxy.down = False
    online(tech)
    expect(notices(tech).filter(has_text=ANSWER)).to_have_count(1)
    tech.wait_for_timeout(1000)
    expect(notices(tech).filter(has_text=ANSWER)).to_have_count(1)  # once, not again
    tech.reload()  # a new page on the same phone: it was delivered, so it is not repeated
    online(tech)
    sees(tech, "Alice")
    expect(notices(tech).filter(has_text=ANSWER)).to_have_count(0)
