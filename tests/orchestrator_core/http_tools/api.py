"""A small HTTP API of the tests' own, served by uvicorn on a free port of 127.0.0.1.

It plays an operator's systems: a provisioning endpoint that needs a bearer
token and honours idempotency keys, a read-only light-level lookup and a
ticket endpoint that acts once per key. A test queues faults per endpoint
(a status code, or ``slow``: answer after the client gave up, having acted).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.own_servers import free_port

TOKEN = "s3cret-t0ken-never-logged"
IN_USE = "ALCL00000001"
DIRTY = "DIRT00000001"
DARK = "DARK00000001"
UNKNOWN = "NONE00000000"
#: Seconds a ``slow`` fault waits before answering: longer than the tools' timeout.
SLOW = 1.5
READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Seen:
    """One request as the API received it."""

    method: str
    path: str
    key: str | None
    port: int
    body: bytes


@dataclass
class ApiState:
    """What the API saw and did, and the faults queued per endpoint name."""

    requests: list[Seen] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Tickets' answers by idempotency key: a second call with a key gets the first answer."""
    tickets: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.faults.clear()
        self.answers.clear()
        self.tickets = 0

    def fail(self, endpoint: str, *faults: str) -> None:
        """Queue faults for the next calls of ``endpoint``: '500', '503', 'slow'."""
        self.faults.setdefault(endpoint, []).extend(faults)

    def requests_to(self, endpoint_path: str) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(endpoint_path)]


def make_app(state: ApiState) -> FastAPI:
    app = FastAPI()

    async def seen(request: Request) -> None:
        client_port = request.client.port if request.client else 0
        state.requests.append(
            Seen(
                request.method,
                request.url.path,
                request.headers.get("idempotency-key"),
                client_port,
                await request.body(),
            )
        )

    async def fault(endpoint: str) -> Response | None:
        queued = state.faults.get(endpoint)
        if not queued:
            return None
        kind = queued.pop(0)
        if kind == "slow":
            await asyncio.sleep(SLOW)
            return None
        return JSONResponse({"error": "injected"}, status_code=int(kind))

    @app.api_route("/", methods=["GET", "HEAD"])
    async def root() -> dict[str, str]:
        return {"service": "test api"}

    @app.post("/onts/{fsan}/activate")
    async def activate(fsan: str, request: Request) -> Response:
        await seen(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        injected = await fault("activate")
        if injected is not None:
            return injected
        body = await request.json()
        if fsan == IN_USE:
            return JSONResponse(
                {"error": {"message": f"serial {fsan} already in use"}}, status_code=409
            )
        return JSONResponse(
            {"activation": {"id": f"ACT-{fsan}", "status": "active", "port": body["port"]}}
        )

    @app.get("/onts/{fsan}/light-levels")
    async def light_levels(fsan: str, request: Request, cleaned: bool = False) -> Response:
        """One status, several meanings, told apart by ``kind`` as the simulator does."""
        await seen(request)
        if fsan == DIRTY and not cleaned:
            fault = {
                "kind": "field_fault",
                "message": "The light is too low",
                "remedy": "Clean and re-seat the fiber connector",
                "confirm": "cleaned",
                "retry_args": {"cleaned": True, "unknown": 1},
            }
            return JSONResponse(fault, status_code=424)
        if fsan == DARK:
            failed = {"kind": "failed", "message": "No light at all: the fiber is cut"}
            return JSONResponse(failed, status_code=424)
        if fsan == UNKNOWN:
            refused = {
                "kind": "refused",
                "message": f"No ONT {fsan} is known",
                "arguments": ["fsan", "elsewhere"],
            }
            return JSONResponse(refused, status_code=422)
        return JSONResponse({"rx_power_dbm": -17.5 if cleaned else -19.0})

    @app.get("/lines/{order_id}/light")
    async def light(order_id: str, request: Request) -> Response:
        await seen(request)
        injected = await fault("light")
        if injected is not None:
            return injected
        return JSONResponse({"levels": [{"rx_dbm": -18.5}], "order": order_id})

    @app.post("/tickets")
    async def ticket(request: Request) -> Response:
        await seen(request)
        key = request.headers.get("idempotency-key") or ""
        if key and key in state.answers:
            return JSONResponse(state.answers[key])
        queued = state.faults.get("tickets")
        injected = queued.pop(0) if queued else None
        if injected and injected != "slow":
            return JSONResponse({"error": "injected"}, status_code=int(injected))
        state.tickets += 1
        answer = {"ticket": f"T-{state.tickets}"}
        if key:
            state.answers[key] = answer
        if injected == "slow":
            await asyncio.sleep(SLOW)  # acted, but answers after the client gave up
        return JSONResponse(answer)

    @app.get("/broken")
    async def broken(request: Request) -> Response:
        await seen(request)
        return Response(b"<html>not json</html>", media_type="text/html")

    return app


@contextmanager
def serve(state: ApiState, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve the API on a free port of 127.0.0.1 in a thread; yield its base URL.

    ``tls``: the certificate and key files to serve HTTPS with.
    """
    port = free_port()
    config = uvicorn.Config(
        make_app(state),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test API did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=READY_TIMEOUT)
