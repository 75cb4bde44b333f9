"""Two servers on one Redis store: a conversation goes on wherever the client lands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.bridges.instances import resume_on_another_server
from tests.bridges.test_websocket import open_client  # noqa: F401 - a fixture
from tests.redis_server import delete_prefix, new_prefix, redis_url

# Two real server processes each: a multi-instance scenario, run by `make test-scale`.
pytestmark = pytest.mark.scale


async def test_a_conversation_started_on_one_server_finishes_on_another(
    tmp_path: Path,
    open_client: Any,  # noqa: F811 - the fixture
) -> None:
    url, prefix = redis_url(), new_prefix()
    shared = {
        "TECHASSIST_STORE": url,
        "TECHASSIST_REDIS_PREFIX": prefix,
        "TECHASSIST_SECRET_KEY": Fernet.generate_key().decode(),
    }
    try:
        await resume_on_another_server(tmp_path, open_client, **shared)
    finally:
        delete_prefix(url, prefix)
