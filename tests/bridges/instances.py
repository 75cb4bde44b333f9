"""A conversation that moves between two real servers sharing one session store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bridges.server import running


async def resume_on_another_server(tmp_path: Path, open_client: Any, **shared: str) -> None:
    """Half an installation on one server, the rest on another with its own data directory.

    ``shared`` is the environment both servers get (the store and its secret key):
    nothing else is shared, so the second server can only go on from the store.
    """
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    with running(tmp_path / "one", **shared) as one:
        client, _ = await open_client(one, "CD5678")
        await client.say("no")
        await client.say("ORD-2002")
        await client.say("fsan=ALCL5E6F7A8B model=G-010G-P ethernet_port=3")
        await client.say("ssid=Lab")
        pending = await client.say("wifi_password=s3cret-passw0rd")
        assert pending["data_needed"] == "customer_online"
    with running(tmp_path / "two", **shared) as two:
        again, first = await open_client(two, "CD5678")
        assert "Welcome back, Carlos Diaz" in first["message"]
        assert first["data_needed"] == "customer_online"
        values = (await again.say("status"))["data"]["values"]
        assert (values["fsan"], values["ssid"]) == ("ALCL5E6F7A8B", "Lab")
        done = await again.say("yes")
        assert "Order ORD-2002 is closed" in done["message"]
    assert not (tmp_path / "two" / "sessions.db").exists()
