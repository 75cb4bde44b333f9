"""A technician on a phone: sign in by link, work an installation, lose the network."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import serve_site
from tests.browser.rig import (
    PHONE,
    Site,
    at_step,
    audit_count,
    eventually,
    new_context,
    offline,
    online,
    say,
    sees,
    sign_in,
    tap,
    transcript,
)

pytestmark = pytest.mark.browser

SERIAL = "ALCL90ABCDEF"
PASSWORD = "lantern-by-the-door"


def start_order(page: Page) -> None:
    """From the greeting to the first question of ORD-1003 (Alice's most urgent order)."""
    sees(page, "Shall we start it?")
    tap(page, "yes")
    sees(page, "Starting ORD-1003")
    at_step(page, 2, 7)
    sees(page, "ONT serial number")


def test_a_technician_signs_in_by_link_and_completes_an_installation_on_a_phone(
    web: Site, phone: BrowserContext
) -> None:
    page = sign_in(phone, web, "AB1234")
    assert page.viewport_size == {"width": 360, "height": 740}
    start_order(page)
    # The header keeps the order and the step in view, whatever the transcript's length.
    expect(page.locator("#where")).to_be_in_viewport()

    say(page, SERIAL)
    sees(page, "Which ONT model")
    for button in page.locator("#choices button").all():  # large enough for a thumb
        size = button.bounding_box()
        assert size is not None and size["height"] >= 44 and size["width"] >= 44
    # Nothing sticks out sideways on a 360 px screen.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    tap(page, "G-240W-F")
    sees(page, "Which Ethernet port")
    say(page, "2")
    sees(page, f"ONT {SERIAL} (G-240W-F) is active")
    sees(page, "Light levels OK")
    at_step(page, 4, 7)

    say(page, "Lovelace")
    sees(page, "What Wi-Fi password")
    box = page.locator("#composer input[name=text]")
    expect(box).to_have_attribute("type", "password")  # a sensitive prompt hides what is typed
    say(page, PASSWORD)
    sees(page, 'Wi-Fi "Lovelace" is set up')
    expect(box).not_to_have_attribute("type", "password")
    assert PASSWORD not in transcript(page).inner_text()  # masked in the transcript too

    sees(page, "Speed test passed")
    at_step(page, 6, 7)
    page.locator("#status-btn").click()  # the values so far: the password stays masked
    sees(page, "ssid=Lovelace")
    assert PASSWORD not in transcript(page).inner_text()
    tap(page, "yes")
    sees(page, "Order ORD-1003 is closed")
    tap(page, "end")
    sees(page, "Orders completed this session: ORD-1003")


def test_the_status_button_shows_where_the_order_stands(web: Site, phone: BrowserContext) -> None:
    page = sign_in(phone, web, "AB1234")
    start_order(page)
    say(page, SERIAL)
    sees(page, "Which ONT model")
    page.locator("#status-btn").click()
    sees(page, "ORD-1003")
    sees(page, SERIAL)  # the values so far
    at_step(page, 2, 7)
    tap(page, "G-240W-F")  # the conversation goes on where it stood
    sees(page, "Which Ethernet port")


def test_a_value_typed_while_offline_is_sent_once_on_reconnect(
    web: Site, phone: BrowserContext
) -> None:
    page = sign_in(phone, web, "AB1234")
    start_order(page)
    say(page, SERIAL)
    tap(page, "G-240W-F")
    sees(page, "Which Ethernet port")

    web.proxy.down = True
    web.proxy.cut()  # the network is gone: the socket closes under the page
    offline(page)
    say(page, "2")  # typed in the basement
    page.wait_for_timeout(1000)  # a few reconnect attempts fail meanwhile
    offline(page)

    web.proxy.down = False
    online(page)
    expect(page.locator("#offline")).to_be_hidden()
    sees(page, f"ONT {SERIAL} (G-240W-F) is active")
    at_step(page, 4, 7)
    sees(page, "What should the Wi-Fi network be called")
    # Sent once: the ONT was activated once, and the page shows the port once.
    assert audit_count(web.data_dir, "activate_ont", "ORD-1003") == 1
    expect(page.locator("#transcript .msg", has_text="is active as")).to_have_count(1)


def test_a_value_whose_reply_was_lost_is_resent_and_answered_without_running_again(
    web: Site, phone: BrowserContext
) -> None:
    """The value reaches the server but the socket dies before the reply: the page resends it
    with the same id after reconnecting, and the server answers from the stored turn."""
    page = sign_in(phone, web, "AB1234")
    start_order(page)
    say(page, SERIAL)
    tap(page, "G-240W-F")
    sees(page, "Which Ethernet port")

    # The value reaches the server, its reply is dropped on the way, then the socket dies.
    web.proxy.mute = True
    say(page, "2")
    eventually(lambda: audit_count(web.data_dir, "activate_ont", "ORD-1003") == 1)
    web.proxy.down = True
    web.proxy.cut()
    web.proxy.mute = False
    offline(page)
    web.proxy.down = False
    online(page)
    sees(page, f"ONT {SERIAL} (G-240W-F) is active")
    sees(page, "What should the Wi-Fi network be called")
    assert audit_count(web.data_dir, "activate_ont", "ORD-1003") == 1
    expect(page.locator("#transcript .msg", has_text="is active as")).to_have_count(1)


def test_a_sign_in_link_works_once_and_nothing_else_signs_in(
    web: Site, phone: BrowserContext, browser: Browser
) -> None:
    link = web.signin_url("AB1234")
    page = phone.new_page()
    page.goto(link)
    page.wait_for_url(f"{web.url}/")
    online(page)

    other = new_context(browser, PHONE, phone=True)
    try:
        stranger = other.new_page()
        stranger.goto(link)  # the same link, on another phone
        expect(stranger.locator("body")).to_contain_text("cannot be used")
        stranger.goto(f"{web.url}/")  # no cookie: no chat, whatever the CUID
        expect(stranger.locator("body")).to_contain_text("You are not signed in")
        expect(stranger.locator("#transcript")).to_have_count(0)
    finally:
        other.close()
    # The first phone's conversation goes on.
    sees(page, "Shall we start it?")


def test_the_conversation_works_from_the_keyboard(web: Site, phone: BrowserContext) -> None:
    page = sign_in(phone, web, "AB1234")
    sees(page, "Shall we start it?")
    yes = page.locator("#choices button", has_text="yes").first
    expect(yes).to_be_visible()
    for _ in range(20):  # Tab through the page until the choice has focus
        if yes.evaluate("(b) => b === document.activeElement"):
            break
        page.keyboard.press("Tab")
    else:
        raise AssertionError("Tab never reached the 'yes' button")
    page.keyboard.press("Enter")
    sees(page, "ONT serial number")
    page.locator("#composer input[name=text]").focus()
    page.keyboard.type(SERIAL)
    page.keyboard.press("Enter")
    sees(page, "Which ONT model")


@pytest.fixture
def slow(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """Every network operation of the simulator takes 1.5 s: activating the ONT is slow."""
    yield from serve_site(tmp_path, request, TECHASSIST_SIM_LATENCY_MS="1500")


def test_a_slow_step_shows_that_the_assistant_is_at_work(slow: Site, phone: BrowserContext) -> None:
    page = sign_in(phone, slow, "AB1234")
    start_order(page)
    say(page, SERIAL)
    tap(page, "G-240W-F")
    sees(page, "Which Ethernet port")
    working = page.locator("#typing")
    expect(working).to_be_hidden()
    say(page, "2")
    expect(working).to_be_visible()  # while the tools run
    sees(page, f"ONT {SERIAL} (G-240W-F) is active")
    expect(working).to_be_hidden()
