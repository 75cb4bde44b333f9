"""The websocket bridge's translation, frame by frame: pure functions, no server."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridges.websocket import ClientFrame, parse_frame, render
from orchestrator_core.turns import Reply


@given(st.text(max_size=200))
def test_any_text_frame_is_read_or_refused_never_raised(raw: str) -> None:
    frame = parse_frame(raw)
    assert frame is None or isinstance(frame.data, str)


def test_legacy_frames_are_read_as_the_client_sends_them() -> None:
    assert parse_frame('{"type": "cuid", "data": "AB1234"}') == ClientFrame("cuid", "AB1234")
    assert parse_frame('{"type": "message", "data": "yes"}') == ClientFrame("message", "yes")
    assert parse_frame("yes") == ClientFrame("message", "yes")
    assert parse_frame("42") == ClientFrame("message", "42")
    assert parse_frame('{"type": "message"}') is None
    assert parse_frame('{"data": 5}') is None
    assert parse_frame("[1]") is None


def test_a_turn_folds_into_one_frame_that_ends_with_its_question() -> None:
    replies = [
        Reply.display("Done.", data={"step": "a"}),
        Reply.display("Also done.", data={"step": "b"}),
        Reply.prompt("Which model?", needs="model", choices=["716GE", "G-240W-F"]),
    ]
    assert render(replies) == {
        "type": "input",
        "message": "Done.\nAlso done.\nWhich model?",
        "data": {"step": "b"},
        "data_needed": "model",
        "choices": ["716GE", "G-240W-F"],
    }
    assert render([Reply.display("Goodbye.")]) == {"type": "display", "message": "Goodbye."}
