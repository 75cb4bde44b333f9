"""Small helpers for reading a conversation's replies."""

from __future__ import annotations

from orchestrator_core.turns import Reply


def said(replies: list[Reply]) -> str:
    """All reply texts of a turn, joined, for substring assertions."""
    return "\n".join(r.text for r in replies)


def question(replies: list[Reply]) -> Reply:
    """The turn's closing question; fails the test if the turn asked none."""
    assert replies and replies[-1].kind.value == "prompt", said(replies)
    return replies[-1]
