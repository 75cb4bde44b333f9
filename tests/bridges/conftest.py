"""Fixtures for the bridge tests."""

from tests.fake_slack.fixtures import fake_slack

__all__ = ["fake_slack"]
