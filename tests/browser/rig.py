"""What the browser tests, the screenshots and the dispatch benchmark share.

The real ``techassist serve`` behind a small TCP proxy on 127.0.0.1 (so a test can
cut every connection, or restart the server behind the same address), the real
CLI for sign-in links and operator accounts, and the page actions a person does.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, BrowserContext, Locator, Page, ViewportSize, expect

from tests.bridges.server import Server, start

#: Viewports: a phone in a basement, and a dispatcher's desk.
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
#: How long a page may take to show what a person waits for (the machine is shared).
WAIT_MS = 20_000
CLI_TIMEOUT = 60.0


def chromium() -> str | None:
    """Debian's Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def cli_env(data_dir: Path, **env: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TECHASSIST_")}
    environment.update({"TECHASSIST_DATA_DIR": str(data_dir), "TECHASSIST_LOG_LEVEL": "WARNING"})
    environment.update(env)
    return environment


def techassist(data_dir: Path, *args: str, stdin: str | None = None, **env: str) -> str:
    """Run ``techassist ARGS`` as an operator would; returns its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env(data_dir, **env),
        cwd=data_dir,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"techassist {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def link_token(data_dir: Path, cuid: str, **env: str) -> str:
    """A one-time sign-in link's token, from ``techassist tokens link --cuid CUID``."""
    printed = techassist(data_dir, "tokens", "link", "--cuid", cuid, **env)
    for line in reversed(printed.split()):
        tokens = parse_qs(urlsplit(line).query).get("t")
        if tokens:
            return tokens[0]
    raise RuntimeError(f"no sign-in link in {printed!r}")


def add_operator(data_dir: Path, name: str, password: str, **env: str) -> None:
    techassist(data_dir, "operators", "add", name, "--password-stdin", stdin=password + "\n", **env)


def audit_count(data_dir: Path, tool: str, order_id: str) -> int:
    """How many successful calls of ``tool`` for ``order_id`` the audit trail holds."""
    with sqlite3.connect(f"file:{data_dir / 'workorders.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(*) FROM audit WHERE tool = ? AND order_id = ? AND ok = 1",
            (tool, order_id),
        ).fetchone()
    return int(row[0])


# --- a TCP proxy a test can cut ------------------------------------------------------


@dataclass
class Proxy:
    """Forwards 127.0.0.1:port to the server; ``cut`` drops every connection at once.

    While ``down``, new connections are accepted and closed straight away, as a
    network that is gone would (the page sees its socket fail and retries). While
    ``mute``, what the server sends is dropped: a reply lost on the way.
    """

    upstream: tuple[str, int]
    listener: socket.socket = field(init=False)
    down: bool = False
    mute: bool = False
    _pipes: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def retarget(self, http_url: str) -> None:
        parts = urlsplit(http_url)
        assert parts.hostname is not None and parts.port is not None
        self.upstream = (parts.hostname, parts.port)

    def cut(self) -> None:
        """Close every open connection, both ways, now."""
        with self._lock:
            pipes, self._pipes = set(self._pipes), set()
        for sock in pipes:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._pipes.update((client, server))
            for a, b, downstream in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(a, b, downstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (downstream and self.mute):
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._pipes.discard(source)
                self._pipes.discard(sink)


# --- the server, behind the proxy ----------------------------------------------------


@dataclass
class Site:
    """A real server on a data directory, reached through a proxy that outlives restarts."""

    data_dir: Path
    env: dict[str, str]
    server: Server
    proxy: Proxy

    @property
    def url(self) -> str:
        """Where browsers go: the proxy, the same address across restarts."""
        return self.proxy.url

    def restart(self, **env: str) -> None:
        """Stop the server (SIGTERM), start it again on the same data behind the same address."""
        self.server.stop()
        self.proxy.cut()
        self.env.update(env)
        self.server = start(self.data_dir, **self.env)
        self.proxy.retarget(self.server.http)

    def stop(self) -> None:
        self.server.stop()
        self.proxy.close()

    def output(self) -> str:
        return "".join(self.server.output)

    def signin_url(self, cuid: str) -> str:
        return f"{self.url}/signin?t={link_token(self.data_dir, cuid, **self.env)}"


@contextmanager
def site(data_dir: Path, **env: str) -> Iterator[Site]:
    settings = dict(env)
    server = start(data_dir, **settings)
    proxy = Proxy(("127.0.0.1", 0))
    proxy.retarget(server.http)
    running = Site(data_dir, settings, server, proxy)
    try:
        yield running
    finally:
        running.stop()


# --- what a technician does ----------------------------------------------------------


def transcript(page: Page) -> Locator:
    return page.locator("#transcript")


def sign_in(context: BrowserContext, site: Site, cuid: str) -> Page:
    """Open the one-time link as a technician would; returns the chat page, online."""
    page = context.new_page()
    page.goto(site.signin_url(cuid))
    page.wait_for_url(f"{site.url}/", timeout=WAIT_MS)
    online(page)
    return page


def online(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def offline(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
    expect(page.locator("#offline")).to_be_visible()


def sees(page: Page, text: str) -> None:
    expect(transcript(page)).to_contain_text(text, timeout=WAIT_MS)


def tap(page: Page, choice: str) -> None:
    """Tap the choice button labelled ``choice``."""
    button = page.locator("#choices button", has_text=choice).first
    expect(button).to_be_visible(timeout=WAIT_MS)
    button.click()


def say(page: Page, text: str) -> None:
    """Type ``text`` in the composer and send it."""
    box = page.locator("#composer input[name=text]")
    expect(box).to_be_enabled(timeout=WAIT_MS)
    box.fill(text)
    page.locator("#composer button[type=submit]").click()


def at_step(page: Page, k: int, n: int) -> None:
    expect(page.locator("#where")).to_contain_text(f"Step {k} of {n}", timeout=WAIT_MS)


def notices(page: Page) -> Locator:
    return page.locator("#transcript .msg.notice")


# --- what a dispatcher does ----------------------------------------------------------


def ops_sign_in(context: BrowserContext, site: Site, name: str, password: str) -> Page:
    """Sign a dispatcher in at /ops, straight to the server: the technician's network
    (the proxy) is not theirs, and a cut there leaves the console alone."""
    page = context.new_page()
    base = site.server.http
    page.goto(f"{base}/ops/login")
    page.locator("input[name=name]").fill(name)
    page.locator("input[name=password]").fill(password)
    page.locator("form button[type=submit], form input[type=submit]").first.click()
    page.wait_for_url(f"{base}/ops", timeout=WAIT_MS)
    return page


def new_context(browser: Browser, viewport: ViewportSize, *, phone: bool = False) -> BrowserContext:
    return browser.new_context(
        viewport=viewport,
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=1,
    )


def eventually(check: Callable[[], bool], *, timeout: float = WAIT_MS / 1000) -> None:
    """Wait until ``check()`` holds (polling), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout:g} s: {check}")
        time.sleep(0.05)
