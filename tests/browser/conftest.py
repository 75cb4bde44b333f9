"""Fixtures for the real-browser tests: Debian's Chromium, headless, on a real server.

Without a Chromium these tests skip, saying why; under ``CI=true`` they fail instead,
since CI installs one (``.ci/run``).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, expect, sync_playwright

from tests.browser.rig import (
    DESKTOP,
    PHONE,
    WAIT_MS,
    Site,
    add_operator,
    chromium,
    new_context,
    site,
)

OPERATOR = ("ana", "correct horse battery staple")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    path = chromium()
    if path is None:
        why = "no Chromium on this machine (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; CI must run the browser tests", pytrace=False)
        pytest.skip(why)
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    path = chromium()
    assert path is not None
    launched = playwright.chromium.launch(executable_path=path, headless=True)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A technician's phone: 360 x 740, touch."""
    context = new_context(browser, PHONE, phone=True)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def desk(browser: Browser) -> Iterator[BrowserContext]:
    """A dispatcher's desktop browser: 1280 x 800, another context (its own cookies)."""
    context = new_context(browser, DESKTOP)
    try:
        yield context
    finally:
        context.close()


def serve_site(tmp_path: Path, request: pytest.FixtureRequest, **env: str) -> Iterator[Site]:
    """The real server with ``env``; its log is printed when the test failed."""
    with site(tmp_path, **env) as running:
        yield running
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print("--- server output ---\n" + running.output())


@pytest.fixture
def web(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    """The real server on a fresh data directory (demo data seeded)."""
    yield from serve_site(tmp_path, request)


@pytest.fixture
def operator(web: Site) -> tuple[str, str]:
    """A dispatcher's account, added with ``techassist operators add NAME --password-stdin``."""
    add_operator(web.data_dir, *OPERATOR, **web.env)
    return OPERATOR


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so a fixture can print the server's log on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
