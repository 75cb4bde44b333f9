"""Running declared HTTP tools: one connection pool and one circuit breaker per host.

A declared tool becomes a ``ToolSpec`` like a built-in one, so the inner agent
validates, times, retries, audits, replays and masks it unchanged. What the
runtime adds is the request and the reading of its answer, classified by what
can fix a failure:

- refused, a fault on site, or failed, as the tool's answer rules say
  (``answers.classify``): ``ArgumentRefused`` with the system's own words, naming
  the inputs to enter again; ``FieldFault`` with its remedy; ``ToolFailed``;
- transient (declared statuses, 5xx by default, timeouts, refused or reset
  connections, an open breaker): ``TransientToolError``;
- misconfigured (401, 403, 404, any other status, an answer that is not JSON or
  lacks a declared output, a TLS certificate that is not trusted): ``ToolFailed``,
  worded for whoever runs TechAssist, and logged.

No message or log line holds a header value or a sensitive input.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx

from orchestrator_core.errors import ToolFailed, TransientToolError
from orchestrator_core.http_tools.answers import classify
from orchestrator_core.http_tools.arguments import arguments_model
from orchestrator_core.http_tools.breaker import CircuitBreaker
from orchestrator_core.http_tools.load import resolve_headers
from orchestrator_core.http_tools.spec import HttpTool, ToolsFile, origin_of
from orchestrator_core.http_tools.templates import (
    PointerMissing,
    fill_body,
    fill_query,
    fill_url,
    resolve,
)
from orchestrator_core.params import ParamType
from orchestrator_core.tools import (
    RetryPolicy,
    ToolContext,
    ToolRegistry,
    ToolSpec,
    current_call_key,
)

log = logging.getLogger("techassist.http_tools")

Runner = Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]

#: Seconds the inner agent waits beyond a tool's own timeout, so the HTTP client's
#: timeout is the one that fires and names the host.
TIMEOUT_MARGIN = 1.0
#: Connections kept open per host, for HTTP/1.1 keep-alive.
KEEPALIVE = 20

# httpx logs every request's URL at INFO and httpcore every header at DEBUG: a URL may
# carry an input and a header a credential, so neither library logs below WARNING.
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def tool_specs(tools_file: ToolsFile, run: Runner) -> list[ToolSpec]:
    """The declared tools as tool specs, each calling ``run(name, arguments)``."""
    return [_spec(name, tool, run) for name, tool in tools_file.tools.items()]


def _spec(name: str, tool: HttpTool, run: Runner) -> ToolSpec:
    async def call(ctx: ToolContext, **arguments: Any) -> dict[str, Any]:
        return await run(name, arguments)

    call.__name__ = name
    call.__doc__ = tool.description
    retry = None
    if tool.retry is not None:
        policy = tool.retry
        retry = RetryPolicy(policy.retries, policy.backoff, policy.max_backoff, policy.jitter)
    return ToolSpec(
        name=name,
        func=call,
        idempotent=tool.idempotent,
        description=tool.description,
        required=frozenset(n for n, spec in tool.inputs.items() if spec.required),
        accepted=frozenset(tool.inputs),
        action=tool.action or f"Running {name}",
        read_only=tool.read_only,
        choices=MappingProxyType(
            {
                n: tuple(spec.choices or ())
                for n, spec in tool.inputs.items()
                if spec.type is ParamType.CHOICE
            }
        ),
        model=arguments_model(name, tool.inputs),
        sensitive=tool.sensitive,
        retry=retry,
        timeout=tool.timeout + TIMEOUT_MARGIN,
        keyed=tool.idempotency_key is not None,
    )


def declared_registry(base: ToolRegistry, tools_file: ToolsFile) -> ToolRegistry:
    """``base`` and the declared tools, for checking plans: the tools are never run.

    A declared tool named like one in ``base`` takes its place, as at start.
    """
    registry = base.copy()

    async def not_started(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        raise ToolFailed(f"{name} is declared but its runtime was not started")

    for spec in tool_specs(tools_file, not_started):
        registry.add(spec, replace=True)
    return registry


@dataclass(frozen=True)
class HostCheck:
    """Whether one host answered: any HTTP status counts, only no answer does not."""

    origin: str
    reachable: bool
    detail: str


class HttpToolRuntime:
    """Runs the tools of one tools file; ``aclose`` closes its connection pools.

    Secret headers are read from ``environ`` here, at start: a missing variable
    raises ToolsFileError naming it. ``ca_bundle`` is a PEM file of the CAs to
    trust instead of the system's (TLS verification is always on).
    """

    def __init__(
        self,
        tools_file: ToolsFile,
        environ: Mapping[str, str],
        *,
        ca_bundle: Path | None = None,
        source: str = "the tools file",
    ) -> None:
        self.tools_file = tools_file
        self._headers = resolve_headers(tools_file, environ, source)
        self._verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_bundle)) if ca_bundle else True
        )
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        for tool in tools_file.tools.values():
            origin = tool.origin
            if origin not in self._breakers:
                settings = tools_file.breaker_for(origin)
                self._breakers[origin] = CircuitBreaker(
                    _host(origin), failures=settings.failures, cooldown=settings.cooldown
                )

    def register(self, registry: ToolRegistry) -> list[str]:
        """Add every declared tool to ``registry``; returns the names that replaced a tool.

        A declared tool named like a built-in one takes its place: the bundled plans
        then run against the operator's systems without a change.
        """
        replaced = [name for name in self.tools_file.tools if name in registry]
        for spec in tool_specs(self.tools_file, self.call):
            registry.add(spec, replace=True)
        return replaced

    def breaker(self, origin: str) -> CircuitBreaker:
        """The breaker of one origin (``spec.origin_of`` form)."""
        return self._breakers[origin_of(origin)]

    def _client(self, origin: str) -> httpx.AsyncClient:
        """The origin's client: its own pool, HTTP/1.1 with keep-alive, TLS verified."""
        client = self._clients.get(origin)
        if client is None:
            client = httpx.AsyncClient(
                verify=self._verify,
                http1=True,
                http2=False,
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=KEEPALIVE * 5, max_keepalive_connections=KEEPALIVE
                ),
            )
            self._clients[origin] = client
        return client

    async def aclose(self) -> None:
        """Close every connection pool."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def call(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Run tool ``name`` once with validated ``arguments``: its outputs, or a ToolFailed."""
        tool = self.tools_file.tools[name]
        breaker = self._breakers[tool.origin]
        host = breaker.host
        wait = breaker.wait_left()
        if wait is not None:
            seconds = max(round(wait), 1)
            raise TransientToolError(
                f"{host} failed {breaker.threshold} times in a row, so TechAssist is giving it "
                f"a rest; try again in {seconds} second{'s' if seconds != 1 else ''}",
                retry_now=False,
            )
        try:
            response = await self._send(name, tool, arguments)
        except httpx.TimeoutException:
            breaker.failed()
            raise TransientToolError(
                f"{host} did not answer within {tool.timeout:g} seconds"
            ) from None
        except httpx.TransportError as exc:
            if _untrusted(exc):  # retrying cannot fix a certificate: it is configuration
                raise self._broken(name, f"{host}'s TLS certificate is not trusted") from None
            breaker.failed()
            raise TransientToolError(f"{host} could not be reached ({_transport(exc)})") from None
        except asyncio.CancelledError:
            breaker.failed()  # the inner agent's timeout: the host did not answer in time
            raise
        return self._outcome(name, tool, response, breaker, arguments)

    async def _send(
        self, name: str, tool: HttpTool, arguments: Mapping[str, Any]
    ) -> httpx.Response:
        headers = dict(self._headers[name])
        key = current_call_key()
        if tool.idempotency_key and key:
            headers[tool.idempotency_key] = key
        body = fill_body(tool.body, arguments) if tool.body is not None else None
        return await self._client(tool.origin).request(
            tool.method,
            fill_url(tool.url, arguments),
            params=fill_query(tool.query, arguments),
            headers=headers,
            json=body,
            timeout=tool.timeout,
        )

    def _outcome(
        self,
        name: str,
        tool: HttpTool,
        response: httpx.Response,
        breaker: CircuitBreaker,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any]:
        status = response.status_code
        host = breaker.host
        if status in tool.transient:
            breaker.failed()
            raise TransientToolError(f"{host} is having trouble (HTTP {status})")
        breaker.succeeded()  # the host answers: what follows is about the request
        if 200 <= status < 300:
            return self._outputs(name, tool, response, host)
        try:
            document = response.json()
        except ValueError:
            document = None
        failure = classify(tool, status, document, arguments)
        raise failure if failure is not None else self._misconfigured(name, tool, status, host)

    def _outputs(
        self, name: str, tool: HttpTool, response: httpx.Response, host: str
    ) -> dict[str, Any]:
        if not tool.outputs:
            return {}
        try:
            document = response.json()
        except ValueError:
            raise self._broken(name, f"{host} answered with something that is not JSON") from None
        outputs: dict[str, Any] = {}
        for output, pointer in tool.outputs.items():
            try:
                outputs[output] = resolve(document, pointer)
            except PointerMissing:
                raise self._broken(
                    name, f"{host}'s answer has nothing at {pointer!r} for the output {output!r}"
                ) from None
        return outputs

    def _misconfigured(self, name: str, tool: HttpTool, status: int, host: str) -> ToolFailed:
        path = urlsplit(tool.url).path or "/"
        if status in (401, 403):
            why = f"{host} did not accept TechAssist's credentials (HTTP {status})"
        elif status == 404:
            why = f"{host} has no {tool.method} {path} (HTTP 404)"
        else:
            why = f"{host} answered HTTP {status}, which no rule of the tool matches"
        return self._broken(name, why)

    @staticmethod
    def _broken(name: str, why: str) -> ToolFailed:
        """A misconfiguration: logged for the operator, and told to the technician plainly."""
        log.warning("declared tool %s is misconfigured: %s", name, why)
        return ToolFailed(f"{why}; the {name} tool needs fixing by whoever runs TechAssist")

    async def check(self) -> list[HostCheck]:
        """Whether each declared host answers at all, without calling any tool."""
        return list(await asyncio.gather(*(self._check(o) for o in sorted(self._breakers))))

    async def _check(self, origin: str) -> HostCheck:
        try:
            response = await self._client(origin).request("HEAD", origin + "/", timeout=5.0)
        except httpx.TimeoutException:
            return HostCheck(origin, False, "no answer within 5 seconds")
        except httpx.TransportError as exc:
            return HostCheck(origin, False, _transport(exc))
        return HostCheck(origin, True, f"answers (HTTP {response.status_code})")


def _host(origin: str) -> str:
    """host:port as messages name it."""
    return origin.split("://", 1)[1]


def _untrusted(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate was not trusted."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _transport(exc: httpx.TransportError) -> str:
    """A plain reason for a connection failure, without any request detail."""
    if _untrusted(exc):
        return "its TLS certificate is not trusted"
    if isinstance(exc, httpx.ConnectError):
        if isinstance(exc.__cause__, ssl.SSLError) or "ssl" in str(exc).lower():
            return "the TLS handshake failed"
        return "connection refused"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "the connection was cut"
    return type(exc).__name__


__all__ = ["HostCheck", "HttpToolRuntime", "declared_registry", "tool_specs"]
