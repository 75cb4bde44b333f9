"""The ``fake_slack`` fixture: import it into a conftest (``from tests.fake_slack.fixtures
import fake_slack``) to get a started ``FakeSlack`` that is stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fake_slack.server import FakeSlack

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


@pytest.fixture
async def fake_slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    """A started ``FakeSlack``, with proxy variables unset.

    slack_sdk reads ``HTTP(S)_PROXY`` for both the Web API and the socket and ignores
    ``NO_PROXY``, so a developer's proxy would swallow requests to 127.0.0.1.
    Anything connected to the fake must be closed before this fixture's teardown (depend on
    this fixture, so yours is torn down first): a client that sees the socket close while the
    fake stops will try to reconnect.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake = FakeSlack()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
