"""The Slack bridge while the work-order database (the technician directory) restarts.

Who a Slack user is comes from the directory. While its server is down, a
message is answered with "briefly unavailable, send it again", not with "you
are not mapped", which would be false and would be remembered for a while.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator_core.orchestrator import UNAVAILABLE
from orchestrator_core.pg.migrate import upgrade
from tests.bridges.test_slack import CARLOS, Rig, make_rig
from tests.conftest import ServicesFactory
from tests.own_servers import own_postgres

__all__ = ["make_rig"]

pytestmark = pytest.mark.scale


async def test_a_slack_user_is_told_to_send_again_while_the_directory_is_down(
    tmp_path: Path,
    make_services: ServicesFactory,
    make_rig: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with own_postgres() as postgres:
        url = postgres.create_database("techassist")
        await upgrade(url)
        rig: Rig = await make_rig(await make_services(tmp_path, database_url=url))
        postgres.stop()
        refused = await rig.say(CARLOS, "hi")
        assert refused["text"] == UNAVAILABLE, refused
        postgres.start()
        welcomed = await rig.say(CARLOS, "hi")
        assert "Carlos Diaz" in welcomed["text"], welcomed
    # The outage is logged as such, not as a failure with a traceback.
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
