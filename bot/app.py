"""The FastAPI application and the uvicorn server that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, Response

from bot.limits import ConnectionsPerAddress, guarded_http
from bot.logs import UVICORN_LOG_CONFIG
from bot.metrics import CONTENT_TYPE_LATEST
from bot.settings import Settings, StartupError, slack_warning, source
from bot.wiring import Services, build, instrument
from bridges import websocket as ws_bridge
from bridges.web.chat import mount_chat
from bridges.web.console import mount_console
from bridges.websocket import WebsocketLimits
from orchestrator_core.errors import StoreError, WorkOrderError
from orchestrator_core.turns import SessionKey

log = logging.getLogger("techassist.server")

if TYPE_CHECKING:  # imported only when Slack is configured: slack-bolt and aiohttp are slow
    from bridges.slack import SlackConfig


def create_app(services: Services) -> FastAPI:
    """Build the app on ``services``; its lifespan runs the Slack bridge when Slack is set up.

    The services are built before the app, so a start-up problem is reported before
    anything listens; whoever built them closes them.
    """
    settings = services.settings
    metrics = instrument(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services
        app.state.websocket = ws_bridge.WebsocketBridge(
            services.orchestrator, door(services), websocket_limits(settings), services.owners
        )
        metrics.websocket_connections.set_function(lambda: app.state.websocket.open)
        app.state.slack = None
        await sweep_once(services)
        sweeper = asyncio.create_task(sweep_sessions(services, settings.session_sweep_interval))
        # One subscriber per process closes this instance's connections that another took over.
        takeovers = (
            asyncio.create_task(services.owners.watch(app.state.websocket.connections.taken))
            if services.owners.shared
            else None
        )
        # One watcher per process hands the sessions with notices to the bridge holding them.
        notices = asyncio.create_task(services.notifier.watch(notice_delivery(app)))
        reminders = asyncio.create_task(remind_idle(services, settings.reminder_interval))
        try:
            config = slack_config(settings)
            if config is not None:
                from bridges.slack import SlackBridge

                app.state.slack = SlackBridge(
                    services.orchestrator,
                    config,
                    redeem=services.credentials.redeem_code,
                    seen=services.seen,
                    dispatch=services.dispatch,
                )
                await app.state.slack.start()
            yield
        finally:
            for task in (sweeper, takeovers, notices, reminders):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if app.state.slack is not None:
                await app.state.slack.stop()

    app = FastAPI(title="TechAssist", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(ConnectionsPerAddress, limit=settings.max_connections_per_ip)
    mount_console(app, services)  # the dispatcher console: /ops, its API and event stream

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The session store and the work-order database answer, the plans are loaded
        and Slack (when on) is connected; each check is named in the body."""
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
        try:
            await services.workorders.ping()
            checks["database"] = "ok"
        except WorkOrderError as exc:
            checks["database"] = str(exc)
            ready = False
        return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint() -> Response:
        """This instance's metrics, in Prometheus' text format."""
        slack = app.state.slack
        metrics.slack_connected.set(1 if slack is not None and await slack.connected() else 0)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket(ws_bridge.PATH)
    async def start_task(websocket: WebSocket) -> None:
        await app.state.websocket.serve(websocket)

    # The technicians' web chat: its page, sign-in link and /ws (app.state.web).
    web = mount_chat(app, services)
    metrics.web_connections.set_function(lambda: web.open)

    return app


def is_loopback(host: str) -> bool:
    """Whether a listening address is reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def ws_auth(settings: Settings) -> tuple[str, int, str]:
    """The websocket authentication mode, and the start-up line (its level and text) saying so.

    Unset, it is ``none`` on a loopback address and ``token`` on any other.
    """
    loopback = is_loopback(settings.host)
    if settings.ws_auth is None:
        mode = "none" if loopback else "token"
        why = "the default on a loopback address" if loopback else "the default off loopback"
    else:
        mode, why = settings.ws_auth, "TECHASSIST_WS_AUTH"
    if mode == "token":
        return mode, logging.INFO, f"websocket clients need a token (token mode, {why})"
    if loopback:
        return (
            mode,
            logging.INFO,
            f"websocket clients need no token (none mode, {why}): anyone on this machine can "
            "connect as any technician; TECHASSIST_WS_AUTH=token requires one",
        )
    return (
        mode,
        logging.WARNING,
        f"websocket clients need no token although the server listens on {settings.host}, "
        f"not loopback (TECHASSIST_WS_AUTH=none): anyone who reaches it can connect as any "
        "technician; unset TECHASSIST_WS_AUTH or set it to token",
    )


def door(services: Services) -> ws_bridge.Door:
    """Who may open the websocket, from the settings."""
    settings = services.settings
    mode, _, _ = ws_auth(settings)
    verify = services.credentials.verify_token if mode == "token" else None
    return ws_bridge.Door.build(verify, settings.ws_allowed_origins.split(","))


async def sweep_once(services: Services) -> None:
    """Delete expired sessions and unused plan snapshots; a failing store only logs."""
    try:
        swept = await services.sessions.sweep()
    except StoreError as exc:
        log.warning("sweeping expired sessions failed: %s", exc)
        return
    if swept.sessions or swept.snapshots:
        log.info(
            "swept %d expired session(s) and %d unused plan snapshot(s)",
            swept.sessions,
            swept.snapshots,
        )


async def sweep_sessions(services: Services, interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled (the lifespan sweeps at start)."""
    while True:
        await asyncio.sleep(interval)
        await sweep_once(services)


#: Which ``app.state`` attribute holds the bridge that delivers each bridge's notices.
#: The legacy websocket never pushes: its notices are drained into the next turn's reply.
NOTICE_BRIDGES = {"web": "web", "slack": "slack"}


def notice_delivery(app: FastAPI) -> Callable[[str], Awaitable[None]]:
    """What the notifier calls with a session key that has notices: the bridge of that key,
    if it runs here, delivers them (``deliver(key)``)."""

    async def deliver(text: str) -> None:
        try:
            key = SessionKey.from_str(text)
        except ValueError:
            log.warning("ignored a notice announcement that is not a session key")
            return
        name = NOTICE_BRIDGES.get(key.bridge)
        bridge = getattr(app.state, name, None) if name is not None else None
        if bridge is not None:
            await bridge.deliver(key)

    return deliver


async def remind_idle(services: Services, interval: float) -> None:
    """Every ``interval`` seconds, put a reminder in the outbox of each session due one."""
    while True:
        await asyncio.sleep(interval)
        try:
            fired = await services.orchestrator.fire_reminders()
        except Exception:  # the loop must outlive one bad pass
            log.exception("looking for sessions due a reminder failed")
            continue
        if fired:
            log.info("reminded %d idle technician(s)", fired)


def settle_heap() -> None:
    """Move everything built at start-up out of the garbage collector's sight.

    Start-up leaves hundreds of thousands of long-lived objects (pydantic
    schemas, plans, libraries). A full collection walks all of them and pauses
    the event loop for 50-100 ms, which shows up as Slack ack and websocket
    latency spikes; frozen objects are skipped.
    """
    gc.collect()
    gc.freeze()


def websocket_limits(settings: Settings) -> WebsocketLimits:
    """The websocket bridge's limits, from the settings."""
    return WebsocketLimits(
        idle_timeout=settings.idle_timeout,
        messages_per_minute=settings.messages_per_minute,
        identify_failures_per_minute=settings.identify_failures_per_minute,
    )


def server_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn options for the limits that live in the server layer.

    The h11 protocol with a handshake timeout and a connection cap, and proxy
    headers believed only from the configured proxies (uvicorn, left to itself,
    believes any ``X-Forwarded-For`` sent from 127.0.0.1).
    """
    proxies = [ip.strip() for ip in settings.forwarded_allow_ips.split(",") if ip.strip()]
    return dict(
        http=guarded_http(settings.max_connections, settings.handshake_timeout),
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )


def slack_config(settings: Settings) -> SlackConfig | None:
    """The Slack bridge's configuration, or ``None`` when Slack's two tokens are not both set."""
    if settings.slack_bot_token is None or settings.slack_app_token is None:
        return None
    from bridges.slack import SlackConfig

    return SlackConfig(
        bot_token=settings.slack_bot_token.get_secret_value(),
        app_token=settings.slack_app_token.get_secret_value(),
        api_url=settings.slack_api_url,
        self_identify=settings.slack_self_identify,
        progress_after=settings.slack_progress_after,
        ping_interval=settings.slack_ping_interval,
        rebuild_after=settings.slack_rebuild_after,
        watchdog_interval=min(5.0, settings.slack_rebuild_after / 2),
        dispatch_channel=settings.slack_dispatch_channel,
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
        log_config=UVICORN_LOG_CONFIG,
        access_log=False,
    )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(settings: Settings, given: Collection[str] = ()) -> int:
    """Run the server until interrupted; announce the bound address once it listens.

    ``given`` names the settings that came from the command line (``host``, ``port``),
    so that an error can say where a value came from. A port in use, a plans or data
    directory that cannot be used raise StartupError before anything runs.
    """
    sock = listen(settings, given)
    try:
        return asyncio.run(_serve(settings, sock))
    finally:
        sock.close()


async def _serve(settings: Settings, sock: socket.socket) -> int:
    services = await build(settings)
    try:
        settle_heap()
        warning = slack_warning(settings)
        if warning:
            log.warning("%s", warning)
        log.info(
            "%d plan(s) from %s; data in %s (%s store); Slack %s",
            len(services.plans.plans),
            settings.plans_dir,
            settings.data_dir,
            settings.store_label,
            "on" if slack_config(settings) else "off",
        )
        _, level, line = ws_auth(settings)
        log.log(level, "%s", line)
        app = create_app(services)
        config = uvicorn_config(app, settings.host, settings.port, **server_limits(settings))
        server = uvicorn.Server(config)
        app.state.server = server  # long-lived streams (the console's events) end when it stops
        return await run_announced(server, "TechAssist", ws_bridge.PATH, sockets=[sock])
    finally:
        await services.aclose()


def listen(
    settings: Settings, given: Collection[str] = (), fields: tuple[str, str] = ("host", "port")
) -> socket.socket:
    """A socket bound to the configured host and port, or StartupError saying what to change.

    ``fields`` names the two settings read (``sim_host``, ``sim_port`` for the simulator),
    so that an error names the variables to change.
    """
    host_field, port_field = fields
    host, port = getattr(settings, host_field), getattr(settings, port_field)
    variables = f"TECHASSIST_{host_field.upper()}/TECHASSIST_{port_field.upper()}"

    def origin(field: str) -> str:
        setting = host_field if field == "host" else port_field
        return f"--{field}" if field in given else source(setting)

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on host {host!r} (from {origin('host')}): {exc.strerror}; "
            f"give another with --host or TECHASSIST_{host_field.upper()}"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (the port is from {origin('port')}); "
                "stop what is using it, or choose another port with --port or "
                f"TECHASSIST_{port_field.upper()}"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port} (host from {origin('host')}, port from "
            f"{origin('port')}): {exc.strerror}; choose another with --host/--port or "
            f"{variables}"
        ) from None
    return sock


async def run_announced(
    server: uvicorn.Server,
    name: str,
    path: str,
    sockets: list[socket.socket] | None = None,
    scheme: str = "ws",
) -> int:
    """Serve until stopped, printing ``<name> listening on <scheme>://HOST:PORT<path>`` once bound.

    With port 0 the line carries the port the OS picked: tests and benchmarks
    wait for it instead of guessing a free port. Returns 1 when the server never started.
    """

    async def serve() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's way to fail its start-up, logged
            await server.serve(sockets=sockets)

    task = asyncio.create_task(serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"{name} listening on {scheme}://{shown}:{port}{path}", flush=True)
    await task
    return 0 if server.started else 1
