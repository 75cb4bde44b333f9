"""Take the screenshots in ``docs/img/`` from a real server in headless Chromium.

Run ``make screenshots`` (or ``python -m tests.browser.screens [--out DIR]``). It
starts ``techassist serve`` on a temporary data directory with the demo data,
walks two technicians into their orders (one escalates), signs a dispatcher in
and saves:

- ``chat-phone.png`` and ``chat-desktop.png``: the technician's chat mid-step;
- ``ops-desktop.png`` and ``ops-phone.png``: the console with the escalation open.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.rig import (
    DESKTOP,
    PHONE,
    WAIT_MS,
    Site,
    add_operator,
    chromium,
    new_context,
    ops_sign_in,
    say,
    sees,
    sign_in,
    site,
    tap,
)

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = ("ana", "correct horse battery staple")


def installation_mid_step(page: Page) -> None:
    """Alice's installation, at the ONT model (a choice)."""
    sees(page, "Shall we start it?")
    tap(page, "yes")
    sees(page, "ONT serial number")
    say(page, "ALCL90ABCDEF")
    sees(page, "Which ONT model")
    expect(page.locator("#choices button").first).to_be_visible()


def repair_mid_step(page: Page) -> None:
    """Carlos's repair, at the diagnosis (a choice)."""
    sees(page, "Shall we start it?")
    tap(page, "yes")
    sees(page, "What did you find?")
    expect(page.locator("#choices button").first).to_be_visible()


def take(browser: Browser, running: Site, out: Path) -> list[Path]:
    saved: list[Path] = []
    for name, viewport, phone in (("phone", PHONE, True), ("desktop", DESKTOP, False)):
        context = new_context(browser, viewport, phone=phone)
        page = sign_in(context, running, "CD5678" if phone else "AB1234")
        (repair_mid_step if phone else installation_mid_step)(page)
        path = out / f"chat-{name}.png"
        page.screenshot(path=path)
        saved.append(path)
        if not phone:  # this technician then hands the order to a human
            say(page, "escalate")
            sees(page, "I've escalated")
        context.close()

    add_operator(running.data_dir, *OPERATOR, **running.env)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = new_context(browser, viewport, phone=name == "phone")
        ops = ops_sign_in(context, running, *OPERATOR)
        expect(ops.locator("#sessions tr[data-key]")).to_have_count(2, timeout=WAIT_MS)
        ops.locator("#queue li[data-id] button").first.click()
        expect(ops.locator("#escalation")).to_be_visible()
        if name == "desktop":
            ops.locator("#audit-order").fill("ORD-1003")
            ops.locator("#audit-form button[type=submit]").click()
            expect(ops.locator("#audit-entries tbody tr").first).to_be_visible()
        if name == "desktop":
            ops.locator("textarea[name=answer]").fill("Fiber crew is on the way; wait at the ONT.")
        ops.evaluate("() => window.scrollTo(0, 0)")
        path = out / f"ops-{name}.png"
        ops.screenshot(path=path, full_page=name == "desktop")
        saved.append(path)
        context.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where to save")
    args = parser.parse_args(argv)
    path = chromium()
    if path is None:
        print("error: no Chromium on this machine (apt-get install chromium)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="techassist-screens-") as tmp,
        site(Path(tmp)) as running,
        sync_playwright() as driver,
    ):
        browser = driver.chromium.launch(executable_path=path, headless=True)
        try:
            for saved in take(browser, running, args.out):
                print(f"saved {saved} ({saved.stat().st_size // 1024} KiB)")
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
