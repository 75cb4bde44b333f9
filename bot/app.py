"""The FastAPI application and the uvicorn server that runs it."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse

from bot.settings import Settings
from bot.wiring import Services, build
from bridges import websocket as ws_bridge
from bridges.slack import SlackBridge, SlackConfig
from orchestrator_core.errors import StoreError

log = logging.getLogger("techassist.server")


def create_app(settings: Settings) -> FastAPI:
    """Build the app; its lifespan builds TechAssist's services and closes them at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build(settings)
        settle_heap()
        app.state.services = services
        app.state.websocket = ws_bridge.WebsocketBridge(services.orchestrator)
        app.state.slack = None
        try:
            config = slack_config(settings)
            if config is not None:
                app.state.slack = SlackBridge(services.orchestrator, config)
                await app.state.slack.start()
            yield
        finally:
            if app.state.slack is not None:
                await app.state.slack.stop()
            await services.aclose()

    app = FastAPI(title="TechAssist", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The session store answers and the plans are loaded."""
        services: Services = app.state.services
        checks: dict[str, Any] = {"plans": len(services.plans.plans)}
        ready = checks["plans"] > 0
        if app.state.slack is None:
            checks["slack"] = "off"
        elif await app.state.slack.connected():
            checks["slack"] = "connected"
        else:
            checks["slack"] = "disconnected"
            ready = False
        try:
            await services.store.ping()
            checks["store"] = "ok"
        except StoreError as exc:
            checks["store"] = str(exc)
            ready = False
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.websocket(ws_bridge.PATH)
    async def start_task(websocket: WebSocket) -> None:
        await app.state.websocket.serve(websocket)

    return app


def settle_heap() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    Start-up leaves hundreds of thousands of long-lived objects (pydantic
    schemas, plans, libraries). A full collection walks all of them and pauses
    the event loop for 50-100 ms, which shows up as Slack ack and websocket
    latency spikes; frozen objects are skipped.
    """
    gc.collect()
    gc.freeze()


def slack_config(settings: Settings) -> SlackConfig | None:
    """The Slack bridge's configuration, or ``None`` when Slack's two tokens are not both set."""
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        return None
    return SlackConfig(
        bot_token=settings.slack_bot_token.get_secret_value(),
        app_token=settings.slack_app_token.get_secret_value(),
        api_url=settings.slack_api_url,
        self_identify=settings.slack_self_identify,
        progress_after=settings.slack_progress_after,
        ping_interval=settings.slack_ping_interval,
        rebuild_after=settings.slack_rebuild_after,
        watchdog_interval=min(5.0, settings.slack_rebuild_after / 2),
    )


def uvicorn_config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """uvicorn's settings for TechAssist, shared with the benchmark's echo server.

    Messages over 64 KiB are refused (close code 1009) and per-message deflate
    is off: legacy frames are small, and compression costs CPU and memory per
    connection. ``websockets-sansio`` is uvicorn's current implementation on the
    websockets library (the older ``websockets`` one logs a deprecation).
    """
    options: dict[str, Any] = dict(
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=ws_bridge.MAX_FRAME,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=None,
        access_log=False,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(settings: Settings) -> int:
    """Run the server until interrupted; announce the bound address once it listens."""
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings.host, settings.port))
    return asyncio.run(run_announced(server, "TechAssist", ws_bridge.PATH))


async def run_announced(server: uvicorn.Server, name: str, path: str) -> int:
    """Serve until stopped, printing ``<name> listening on ws://HOST:PORT<path>`` once bound.

    With port 0 the line carries the port the OS picked: tests and benchmarks
    wait for it instead of guessing a free port.
    """
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"{name} listening on ws://{shown}:{port}{path}", flush=True)
    await task
    return 0 if server.started else 1
