"""A fake Slack for tests: Web API and Socket Mode on 127.0.0.1, port 0, for the real clients.

Point slack_sdk's ``AsyncWebClient(base_url=fake.api_url)`` at it and hand that client to
slack-bolt's ``AsyncApp`` and ``AsyncSocketModeHandler``; ``apps.connections.open`` then hands
out a ``ws://`` URL on the same server. See ``fixtures.py`` for the ``fake_slack`` fixture and
``test_fake_slack.py`` for how the real clients are wired to it.
"""

from __future__ import annotations

from tests.fake_slack.events import (
    app_mention,
    bot_message,
    message,
    message_changed,
    message_im,
    next_ts,
)
from tests.fake_slack.records import Ack, ApiCall, Connection, Envelope, ResponseUrlPost
from tests.fake_slack.server import FakeSlack

__all__ = [
    "Ack",
    "ApiCall",
    "Connection",
    "Envelope",
    "FakeSlack",
    "ResponseUrlPost",
    "app_mention",
    "bot_message",
    "message",
    "message_changed",
    "message_im",
    "next_ts",
]
