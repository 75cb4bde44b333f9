"""The ``fake_slack`` fixture here; other test packages import it the same way."""

from tests.fake_slack.fixtures import fake_slack

__all__ = ["fake_slack"]
