"""The network simulator served over HTTP: ``techassist simulate``.

The answers come from ``orchestrator_core.simulator`` (the same readings as in
process); this module only translates them to HTTP and adds what a real
service has and the in-process simulator need not:

- an answer per kind of failure, each with a JSON body whose ``message`` is for
  the technician and whose ``kind`` says what can fix it: ``refused`` (422, or
  409 for a serial in use on another order: enter another value), ``field_fault``
  (424: fix something on site, then try again), ``failed`` (424: nothing the
  technician enters helps), ``transient`` (5xx: try again);
- faults injected per endpoint (``bot.sim_faults``): latency, 5xx, timeouts,
  connection resets, flapping, before or after the action's effect;
- ``Idempotency-Key``: a repeated key is answered with the first answer, and the
  action is not done twice; answers are kept per key, the newest ``KEPT_ANSWERS``;
- a count of effects per endpoint, and an admin endpoint (a bearer token,
  ``TECHASSIST_SIM_ADMIN_TOKEN``; without one it is off) to read the counts and
  change the faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import struct
import typing
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.app import listen, run_announced, uvicorn_config
from bot.settings import Settings, StartupError
from bot.sim_faults import (
    Decision,
    Fault,
    FaultInjector,
    FaultSpecError,
    Operation,
    json_path,
    parse_faults,
)
from bot.wiring import simulator_config
from orchestrator_core.errors import (
    ArgumentRefused,
    FieldFault,
    ToolFailed,
    TransientToolError,
)
from orchestrator_core.simulator import Activations, NetworkSimulator, SerialInUse
from orchestrator_core.tools import NOT_ONLINE, light_failure

log = logging.getLogger("techassist.simulate")

#: Answers kept for replay, per operation and Idempotency-Key; the oldest go first.
KEPT_ANSWERS = 10_000
#: Seconds a stopping server waits for hanging requests before it cancels them.
SHUTDOWN_GRACE = 1.0
#: The header that marks an answer replayed for a repeated Idempotency-Key.
REPLAYED = "idempotent-replayed"


# ---------------------------------------------------------------------- state


@dataclass
class Answer:
    """A whole HTTP answer, kept to be replayed for a repeated Idempotency-Key."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    fingerprint: str = ""


class AnswerCache:
    """The first answer per (operation, key), the newest ``capacity`` kept.

    A request waits for an earlier one with the same key still running, so two
    concurrent repeats never both act.
    """

    def __init__(self, capacity: int = KEPT_ANSWERS) -> None:
        self.capacity = capacity
        self._answers: OrderedDict[tuple[str, str], Answer] = OrderedDict()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._holders: Counter[tuple[str, str]] = Counter()

    def get(self, key: tuple[str, str]) -> Answer | None:
        return self._answers.get(key)

    def put(self, key: tuple[str, str], answer: Answer) -> None:
        self._answers[key] = answer
        self._answers.move_to_end(key)
        while len(self._answers) > self.capacity:
            self._answers.popitem(last=False)

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        """Run one request with ``key`` at a time; the lock goes with its last holder."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] += 1
        try:
            async with lock:
                yield
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key], self._locks[key]

    def clear(self) -> None:
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)


@dataclass
class SimulatorService:
    """Everything the served simulator keeps between requests."""

    sim: NetworkSimulator
    faults: FaultInjector
    initial_faults: dict[str, Fault]
    admin_token: str | None = None
    activations: Activations = field(default_factory=Activations)
    answers: AnswerCache = field(default_factory=AnswerCache)
    requests: Counter[str] = field(default_factory=Counter)
    effects: Counter[str] = field(default_factory=Counter)
    """Requests per operation whose action was done (a replayed answer is no new effect)."""
    replays: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        """Back to the start: the faults from the settings, no counts, answers or activations."""
        self.faults.replace(self.initial_faults)
        self.activations.clear()
        self.answers.clear()
        self.requests.clear()
        self.effects.clear()
        self.replays.clear()


# ---------------------------------------------------------------------- models


def _serial(value: str) -> str:
    """An ONT serial, upper-cased: 4 letters then 8 hex digits."""
    serial = value.strip().upper()
    if len(serial) != 12 or not serial[:4].isalpha() or not _hex(serial[4:]):
        raise ValueError(
            f"{value.strip()!r} doesn't look like an ONT serial: 4 letters then 8 hex digits, "
            "like ALCL1234ABCD"
        )
    return serial


def _hex(text: str) -> bool:
    return all(char in "0123456789ABCDEF" for char in text)


#: Checked by ``_serial`` (for its message); the schema shows the same rule.
Serial = Annotated[
    str,
    AfterValidator(_serial),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*[A-Za-z]{4}[0-9A-Fa-f]{8}\s*$",
            "examples": ["ALCL1234ABCD"],
        }
    ),
]
NonBlank = Annotated[str, Field(min_length=1, max_length=200)]


class ActivateRequest(BaseModel):
    order_id: NonBlank
    fsan: Serial
    model: NonBlank
    ethernet_port: int


class ActivateAnswer(BaseModel):
    ont_id: str
    activation_status: str


class LightReading(BaseModel):
    rx_power_dbm: float
    tx_power_dbm: float
    light_ok: bool
    cause: str | None = Field(default=None, description="why a dark line is dark")


class WifiRequest(BaseModel):
    ssid: str = Field(description="1 to 32 bytes")
    wifi_password: str = Field(description="8 to 63 plain characters; sensitive")


class WifiAnswer(BaseModel):
    wifi_configured: bool
    ssid: str


class SpeedTestRequest(BaseModel):
    service_tier: str = Field(description="300M, 500M or 1G")


class SpeedTestAnswer(BaseModel):
    download_mbps: float
    upload_mbps: float
    tier_met: bool


class LineTestAnswer(BaseModel):
    line_status: str = Field(description="ok or fault")
    loss_db: float
    fault_location: str | None


class ReplaceRequest(BaseModel):
    new_serial: Serial
    new_model: str | None = Field(default=None, description="checked when given")
    old_serial: str | None = Field(default=None, description="the ONT taken out, if known")


class ReplaceAnswer(BaseModel):
    ont_id: str
    new_serial: str
    new_model: str | None
    replaced: bool


class OnlineRequest(BaseModel):
    customer_online: bool


class OnlineAnswer(BaseModel):
    customer_online: bool


class EscalateRequest(BaseModel):
    cuid: NonBlank
    order_id: str | None = None
    kind: str = "tool_failure"


class EscalateAnswer(BaseModel):
    notified: bool


class Problem(BaseModel):
    """Every answer other than a success: ``message`` is for the technician."""

    kind: str = Field(description="refused, field_fault, failed or transient")
    message: str
    arguments: list[str] = Field(default_factory=list, description="the refused arguments")
    choices: list[str] = Field(default_factory=list, description="the values accepted")
    errors: list[dict[str, str]] = Field(
        default_factory=list, description="each invalid value with its JSON path"
    )
    remedy: str | None = Field(default=None, description="a field fault: what to do on site")
    confirm: str | None = Field(default=None, description="a field fault: the word that says done")
    retry_args: dict[str, Any] | None = Field(
        default=None, description="a field fault: the arguments to try again with"
    )
    reading: LightReading | None = None


class Stats(BaseModel):
    requests: dict[str, int]
    effects: dict[str, int]
    replays: dict[str, int]
    kept_answers: int
    faults: dict[str, Fault]


PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "a value was refused (kind: refused)"},
    503: {"model": Problem, "description": "the system did not respond; try again"},
}
IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "the serial is in use on another order (refused)"},
}
SITE: dict[int | str, dict[str, Any]] = {
    424: {
        "model": Problem,
        "description": "a fault on site: field_fault (fix it, then try again) or failed",
    },
}


# ---------------------------------------------------------------------- the app


def create_simulator_app(service: SimulatorService) -> FastAPI:
    """The simulator's HTTP API; ``service`` holds its state."""
    app = FastAPI(
        title="TechAssist network simulator",
        version="1",
        description=(
            "The provisioning, test and dispatch systems TechAssist's HTTP tools call, "
            "simulated deterministically. Failures answer with a JSON body whose `message` "
            "is for the technician and whose `kind` says what can fix it. Requests with an "
            "`Idempotency-Key` header are answered once; repeats get the first answer."
        ),
    )
    sim = service.sim
    _add_error_answers(app)

    @app.post(
        "/onts/activate",
        name="activate_ont",
        summary="Activate an ONT on an order's line",
        response_model=ActivateAnswer,
        responses={**PROBLEMS, **IN_USE},
    )
    async def activate_ont(request: ActivateRequest) -> dict[str, Any]:
        result = await sim.activate_ont(
            request.order_id, request.fsan, request.model, request.ethernet_port
        )
        service.activations.claim(request.fsan, request.order_id, "fsan")
        return result

    @app.get(
        "/onts/{fsan}/light-levels",
        name="check_light_levels",
        summary="Read the optical power at an ONT",
        description="A dark line answers 424: `field_fault` when cleaning the connector "
        "can fix it (then ask again with `cleaned=true`), else `failed`.",
        response_model=LightReading,
        response_model_exclude_none=True,
        responses={**PROBLEMS, **SITE},
    )
    async def check_light_levels(fsan: Serial, cleaned: bool = False) -> Any:
        reading = await sim.check_light_levels(fsan, cleaned)
        failure = light_failure(reading, cleaned)
        if failure is not None:
            return _problem(failure, reading=LightReading(**reading))
        return reading

    @app.put(
        "/onts/{fsan}/wifi",
        name="configure_wifi",
        summary="Set an ONT's Wi-Fi name and password",
        response_model=WifiAnswer,
        responses=PROBLEMS,
    )
    async def configure_wifi(fsan: Serial, request: WifiRequest) -> dict[str, Any]:
        return await sim.configure_wifi(fsan, request.ssid, request.wifi_password)

    @app.post(
        "/onts/{fsan}/speed-test",
        name="run_speed_test",
        summary="Measure a line's speed against a service tier",
        response_model=SpeedTestAnswer,
        responses=PROBLEMS,
    )
    async def run_speed_test(fsan: Serial, request: SpeedTestRequest) -> dict[str, Any]:
        return await sim.run_speed_test(fsan, request.service_tier)

    @app.post(
        "/orders/{order_id}/line-test",
        name="run_line_test",
        summary="Test a customer's line for a fault",
        description="About half of all orders show a fault until new equipment went in: "
        "`repaired` says so, else an ONT activated on the order here does.",
        response_model=LineTestAnswer,
        responses=PROBLEMS,
    )
    async def run_line_test(order_id: str, repaired: bool | None = None) -> dict[str, Any]:
        if repaired is None:
            repaired = service.activations.has_equipment(order_id)
        return await sim.run_line_test(order_id, repaired)

    @app.post(
        "/orders/{order_id}/equipment",
        name="replace_equipment",
        summary="Swap the ONT on an order for a new one",
        response_model=ReplaceAnswer,
        responses={**PROBLEMS, **IN_USE},
    )
    async def replace_equipment(order_id: str, request: ReplaceRequest) -> dict[str, Any]:
        old = request.old_serial.strip().upper() if request.old_serial else None
        result = await sim.replace_equipment(order_id, request.new_serial, request.new_model, old)
        service.activations.claim(request.new_serial, order_id, "new_serial")
        if old is not None and old != request.new_serial:
            service.activations.release(old)
        return {
            **result,
            "new_serial": request.new_serial,
            "new_model": request.new_model,
            "replaced": True,
        }

    @app.post(
        "/orders/{order_id}/customer-online",
        name="confirm_customer_online",
        summary="Record that the customer is online",
        response_model=OnlineAnswer,
        responses=PROBLEMS,
    )
    async def confirm_customer_online(order_id: str, request: OnlineRequest) -> dict[str, Any]:
        if not request.customer_online:
            raise ArgumentRefused(NOT_ONLINE, ("customer_online",))
        return {"customer_online": True}

    @app.post(
        "/escalations",
        name="escalate",
        summary="Tell the dispatch desk a human is needed",
        response_model=EscalateAnswer,
        responses=PROBLEMS,
    )
    async def escalate(request: EscalateRequest) -> dict[str, Any]:
        return await sim.escalate(request.cuid, request.order_id, request.kind)

    _add_admin(app, service)
    app.add_middleware(SimulatorGate, service=service, routes=app.router.routes)
    return app


def _add_error_answers(app: FastAPI) -> None:
    """Every failure answers with a ``Problem``; the status says which kind."""

    async def tool_failed(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ToolFailed)
        return _problem(exc)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = []
        for error in exc.errors():  # the first part of a location is body, path or query
            errors.append({"path": json_path(error["loc"][1:]), "message": str(error["msg"])})
        arguments = sorted(
            {str(error["loc"][1]) for error in exc.errors() if len(error["loc"]) > 1}
        )
        message = "; ".join(f"{error['path']}: {error['message']}" for error in errors)
        body = Problem(kind="refused", message=message, arguments=arguments, errors=errors)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    app.add_exception_handler(ToolFailed, tool_failed)
    app.add_exception_handler(RequestValidationError, invalid)


def _problem(exc: ToolFailed, reading: LightReading | None = None) -> JSONResponse:
    """The answer for a failure the simulator raised, by what can fix it."""
    message = str(exc)
    if isinstance(exc, ArgumentRefused):
        status = 409 if isinstance(exc, SerialInUse) else 422
        body = Problem(
            kind="refused",
            message=message,
            arguments=list(exc.arguments),
            choices=list(exc.choices),
        )
    elif isinstance(exc, FieldFault):
        status = 424
        body = Problem(
            kind="field_fault",
            message=message,
            remedy=exc.remedy,
            confirm=exc.confirm,
            retry_args=exc.retry_args,
            reading=reading,
        )
    elif isinstance(exc, TransientToolError):
        status, body = 503, Problem(kind="transient", message=message)
    else:
        status, body = 424, Problem(kind="failed", message=message, reading=reading)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def _add_admin(app: FastAPI, service: SimulatorService) -> None:
    """``/admin/*``: counts and faults, for a bearer of ``TECHASSIST_SIM_ADMIN_TOKEN``."""

    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if service.admin_token is None:
            raise AdminRefused(404, "the admin endpoint is off (TECHASSIST_SIM_ADMIN_TOKEN unset)")
        scheme, _, token = (authorization or "").partition(" ")
        expected = service.admin_token.encode()
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(given, expected):
            raise AdminRefused(401, "the admin endpoint needs Authorization: Bearer <token>")

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AdminRefused)
        body = {"kind": "refused", "message": exc.message}
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

    app.add_exception_handler(AdminRefused, refused)
    guarded = [Depends(admin)]
    unauthorized: dict[int | str, dict[str, Any]] = {
        401: {"description": "no or a wrong token"},
        404: {"description": "the admin endpoint is off"},
    }

    @app.get(
        "/admin/stats",
        summary="Requests, effects and replays per operation, and the faults in force",
        response_model=Stats,
        dependencies=guarded,
        responses=unauthorized,
    )
    async def stats() -> Stats:
        return _stats(service)

    @app.put(
        "/admin/faults",
        summary="Replace the faults in force (by operation); {} heals every endpoint",
        response_model=Stats,
        dependencies=guarded,
        responses={**unauthorized, 422: {"model": Problem}},
    )
    async def faults(table: dict[Operation, Fault]) -> Stats:
        service.faults.replace({str(operation): fault for operation, fault in table.items()})
        return _stats(service)

    @app.post(
        "/admin/reset",
        summary="Forget counts, kept answers and activations; the faults from the settings",
        response_model=Stats,
        dependencies=guarded,
        responses=unauthorized,
    )
    async def reset() -> Stats:
        service.reset()
        return _stats(service)


class AdminRefused(Exception):
    """A request to the admin endpoint without its token, or while it is off."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _stats(service: SimulatorService) -> Stats:
    return Stats(
        requests=dict(service.requests),
        effects=dict(service.effects),
        replays=dict(service.replays),
        kept_answers=len(service.answers),
        faults=service.faults.table,
    )


# ---------------------------------------------------------------------- faults and keys


class SimulatorGate:
    """Around each operation: injected faults, Idempotency-Key replays and effect counts.

    A plain ASGI middleware, because it must hold a request whole (its body for the
    key's fingerprint), decide its fate before or after the endpoint ran, and reach
    the connection to reset it.
    """

    def __init__(self, app: ASGIApp, service: SimulatorService, routes: list[Any]) -> None:
        self.app = app
        self.service = service
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation = self._operation(scope) if scope["type"] == "http" else None
        if operation is None:
            await self.app(scope, receive, send)
            return
        self.service.requests[operation] += 1
        body = await _read_body(receive)
        decision = self.service.faults.decide(operation)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.outcome == "down" or (decision.outcome != "ok" and not decision.after_effect):
            await _strike(decision, operation, receive, send)
            return
        answer = await self._answer(operation, scope, body, receive)
        if decision.outcome != "ok":
            await _strike(decision, operation, receive, send)
            return
        await _send(send, answer)

    def _operation(self, scope: Scope) -> str | None:
        """The operation a request is for (its route's name); None for others (admin, docs)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                name = getattr(route, "name", None)
                return name if name in OPERATIONS else None
        return None

    async def _answer(self, operation: str, scope: Scope, body: bytes, receive: Receive) -> Answer:
        """The endpoint's answer, or the kept one for a repeated Idempotency-Key."""
        key = _header(scope, b"idempotency-key")
        if key is None:
            return await self._run(operation, scope, body, receive)
        fingerprint = hashlib.sha256(
            b"\x1f".join([scope["method"].encode(), _raw_path(scope), scope["query_string"], body])
        ).hexdigest()
        async with self.service.answers.hold((operation, key)):
            kept = self.service.answers.get((operation, key))
            if kept is not None:
                if kept.fingerprint != fingerprint:
                    return _json_answer(
                        422,
                        {
                            "kind": "refused",
                            "message": "this Idempotency-Key was used for a different request",
                        },
                    )
                self.service.replays[operation] += 1
                return Answer(kept.status, [*kept.headers, (REPLAYED.encode(), b"true")], kept.body)
            answer = await self._run(operation, scope, body, receive)
            if answer.status < 500:  # a transient failure did nothing: a repeat may act
                answer.fingerprint = fingerprint
                self.service.answers.put((operation, key), answer)
            return answer

    async def _run(self, operation: str, scope: Scope, body: bytes, receive: Receive) -> Answer:
        """Run the endpoint on the request held whole; count its effect when it succeeded."""
        answer = Answer(500, [], b"")
        chunks: list[bytes] = []
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
                answer.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay_receive, capture)
        answer.body = b"".join(chunks)
        if 200 <= answer.status < 300:
            self.service.effects[operation] += 1
        return answer


#: The routes the gate acts on (their names); the admin endpoint and the docs pass untouched.
OPERATIONS = frozenset(typing.get_args(Operation))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    return raw if raw is not None else str(scope["path"]).encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            text: str = value.decode("latin-1").strip()
            return text or None
    return None


def _json_answer(status: int, body: dict[str, Any]) -> Answer:
    return Answer(status, [(b"content-type", b"application/json")], json.dumps(body).encode())


async def _send(send: Send, answer: Answer) -> None:
    headers = [(k, v) for k, v in answer.headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _strike(decision: Decision, operation: str, receive: Receive, send: Send) -> None:
    """Answer as the injected fault says: a 5xx, no answer at all, or a reset connection."""
    when = "after its effect" if decision.after_effect else "before any effect"
    log.debug("injected %s on %s, %s", decision.outcome, operation, when)
    if decision.outcome == "down":
        message = f"{operation} is down (injected flapping); try again later"
        await _send(send, _json_answer(503, {"kind": "transient", "message": message}))
    elif decision.outcome == "error":
        message = f"{operation} failed (injected {decision.status})"
        await _send(send, _json_answer(decision.status, {"kind": "transient", "message": message}))
    elif decision.outcome == "timeout":
        if not await _client_gone(receive, decision.hang):
            message = f"{operation} timed out (injected)"
            await _send(send, _json_answer(504, {"kind": "transient", "message": message}))
    elif decision.outcome == "reset":
        await _reset(receive, send)


async def _client_gone(receive: Receive, seconds: float) -> bool:
    """Wait until the client hangs up, at most ``seconds``; whether it did."""

    async def disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(disconnect(), seconds)
    except TimeoutError:
        return False
    return True


async def _reset(receive: Receive, send: Send) -> None:
    """Reset the connection (TCP RST) with no answer.

    ASGI has no way to do that: the connection is reached through uvicorn's request
    cycle behind ``receive``. Should that ever be missing, the answer is cut short
    instead (headers, then a closed connection), which a client sees as a broken
    connection too.
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if isinstance(transport, asyncio.Transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.sleep(0)  # let uvicorn see the connection lost
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    raise ConnectionResetError("injected connection reset")


# ---------------------------------------------------------------------- serving


def build_service(settings: Settings) -> SimulatorService:
    """The simulator's state from the settings; a bad fault table raises StartupError."""
    try:
        table = parse_faults(settings.sim_faults)
    except FaultSpecError as exc:
        raise StartupError(
            f"TECHASSIST_SIM_FAULTS is invalid: {exc}; correct it or unset it (no faults)"
        ) from None
    token = settings.sim_admin_token.get_secret_value() if settings.sim_admin_token else None
    return SimulatorService(
        sim=NetworkSimulator(simulator_config(settings)),
        faults=FaultInjector(table, settings.sim_seed),
        initial_faults=table,
        admin_token=token or None,
    )


def simulate(settings: Settings, given: Collection[str] = ()) -> int:
    """Serve the simulator until interrupted; announce its address once it listens."""
    service = build_service(settings)
    sock = listen(settings, given, fields=("sim_host", "sim_port"))
    try:
        return asyncio.run(_simulate(settings, service, sock))
    finally:
        sock.close()


async def _simulate(settings: Settings, service: SimulatorService, sock: socket.socket) -> int:
    faulty = ", ".join(sorted(service.initial_faults)) or "none"
    admin = "on" if service.admin_token else "off (TECHASSIST_SIM_ADMIN_TOKEN is unset)"
    log.info("simulator faults: %s; admin endpoint %s", faulty, admin)
    app = create_simulator_app(service)
    config = uvicorn_config(
        app, settings.sim_host, settings.sim_port, timeout_graceful_shutdown=SHUTDOWN_GRACE
    )
    server = uvicorn.Server(config)
    return await run_announced(server, "TechAssist simulator", "", sockets=[sock], scheme="http")


__all__ = [
    "KEPT_ANSWERS",
    "REPLAYED",
    "SimulatorService",
    "build_service",
    "create_simulator_app",
    "simulate",
]
