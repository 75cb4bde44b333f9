"""The server's lifespan hands each session with notices to the bridge that holds it."""

from __future__ import annotations

import asyncio

from bot.app import create_app
from bot.wiring import Services
from bridges.memory import MemoryBridge
from orchestrator_core.notices import Notice
from orchestrator_core.orchestrator import Orchestrator
from orchestrator_core.turns import SessionKey

TIMEOUT = 10.0


class PushBridge:
    """Stands in for a bridge that pushes (web chat, Slack): it takes the notices it is told of.

    The real push bridges live on their own branches; this one does what their
    ``deliver`` is specified to do, so the routing is tested on its own.
    """

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator
        self.pushed: asyncio.Queue[tuple[SessionKey, list[Notice]]] = asyncio.Queue()

    async def deliver(self, key: SessionKey) -> None:
        await self.pushed.put((key, await self.orchestrator.take_notices(key)))


async def test_a_notice_for_a_web_session_is_pushed_by_the_web_bridge(services: Services) -> None:
    app = create_app(services)
    async with app.router.lifespan_context(app):
        web = app.state.web = PushBridge(services.orchestrator)
        chat = MemoryBridge(services.orchestrator, "AB1234", bridge="web")
        await chat.say("AB1234")
        legacy = MemoryBridge(services.orchestrator, "CD5678", bridge="websocket")
        await legacy.say("CD5678")
        # A legacy session's notice waits for its next turn; nobody pushes it.
        await services.orchestrator.notify(legacy.key, "for the legacy client")
        await services.orchestrator.notify("AB1234", "Dispatch: go ahead", kind="answer")
        key, notices = await asyncio.wait_for(web.pushed.get(), TIMEOUT)
        assert key == chat.key
        assert [(n.kind, n.text) for n in notices] == [("answer", "Dispatch: go ahead")]
        assert web.pushed.empty()
        assert (await legacy.say("status"))[0].text == "for the legacy client"


async def test_a_notice_for_a_bridge_not_running_here_waits_in_the_session(
    services: Services,
) -> None:
    app = create_app(services)
    async with app.router.lifespan_context(app):
        assert app.state.slack is None  # Slack is not configured on this instance
        chat = MemoryBridge(services.orchestrator, "AB1234", bridge="slack")
        await chat.say("AB1234")
        await services.orchestrator.notify("AB1234", "kept for later")
        await asyncio.sleep(0.1)  # the watcher had its chance and had no bridge to hand it to
        assert (await chat.say("status"))[0].text == "kept for later"
