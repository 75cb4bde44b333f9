"""Frames a stranger can craft, against the real server: refused, never a dropped connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.asyncio.client import connect

from bridges.websocket import FORMAT_HELP
from tests.bridges.server import Server, running
from tests.bridges.test_websocket import TIMEOUT, Legacy

# Lone surrogates as JSON escapes: valid UTF-8 on the wire, unencodable once decoded.
SURROGATE_MESSAGE = '{"type": "message", "data": "ALCL\\ud800"}'
SURROGATE_CUID = '{"type": "cuid", "data": "AB\\udfff"}'
DEEP = '{"type": "message", "data": "yes", "x": ' + "[" * 1000 + "]" * 1000 + "}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("hostile")) as srv:
        yield srv


@pytest.fixture
async def legacy(server: Server) -> AsyncIterator[Legacy]:
    async with connect(server.url, compression=None, open_timeout=TIMEOUT, proxy=None) as ws:
        yield Legacy(ws)


def _no_traceback(server: Server) -> None:
    output = "".join(server.output)
    assert "Traceback" not in output and "RecursionError" not in output, output


async def test_a_frame_nested_1000_deep_gets_the_format_help_and_the_session_goes_on(
    server: Server, legacy: Legacy
) -> None:
    assert len(DEEP) < 2100
    assert (await legacy.ask(DEEP))["message"] == FORMAT_HELP  # before identifying
    first = await legacy.ask({"type": "cuid", "data": "CD5678"})
    assert first["choices"] == ["yes", "no"]
    assert (await legacy.ask(DEEP))["message"] == FORMAT_HELP  # and after
    frame = await legacy.say("status")
    assert frame["message"].splitlines()[-1] == first["message"].splitlines()[-1]
    assert legacy.received == legacy.sent
    _no_traceback(server)


async def test_a_lone_surrogate_gets_the_format_help_and_the_session_goes_on(
    server: Server, legacy: Legacy
) -> None:
    assert (await legacy.ask(SURROGATE_CUID))["message"] == FORMAT_HELP
    first = await legacy.ask({"type": "cuid", "data": "EF9012"})
    assert "Erin Fox" in first["message"]
    assert (await legacy.ask(SURROGATE_MESSAGE))["message"] == FORMAT_HELP
    frame = await legacy.say("status")
    assert frame["type"] == "input" and frame["message"].splitlines()[-1]
    assert legacy.received == legacy.sent
    _no_traceback(server)


async def test_many_hostile_frames_in_a_row_leave_the_server_answering(
    server: Server, legacy: Legacy
) -> None:
    await legacy.ask({"type": "cuid", "data": "AB1234"})
    for frame in (DEEP, SURROGATE_MESSAGE, "[" * 60000, '{"data": "' + "\\ud800" * 5000 + '"}'):
        assert (await legacy.ask(frame))["message"] == FORMAT_HELP
    answered = await asyncio.wait_for(legacy.say("status"), TIMEOUT)
    assert answered["type"] == "input"
    _no_traceback(server)
