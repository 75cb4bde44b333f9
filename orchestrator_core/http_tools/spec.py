"""The tools file: HTTP tools an integrator declares, as pydantic models.

A tools file (YAML or JSON) maps tool names to ``HttpTool`` declarations. Each
model refuses unknown keys, so a typo is an error with its JSON path, never a
silently ignored setting. The checks that span fields (a URL template naming an
input that is not declared, a literal secret header, retries on a tool that is
not idempotent) are in ``file_problems``, which names each problem's JSON path.

Templates name inputs in braces: ``/onts/{fsan}`` in a URL or query value, and
``"{fsan}"`` in a body, where a string that is exactly one ``{name}`` becomes
the input's typed value (a number stays a number) and any other string is
filled as text.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator_core.audit import KEY_FIELD as RESERVED_OUTPUT
from orchestrator_core.params import Parameter

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

NAME = re.compile(r"[a-z][a-z0-9_]*")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: A secret header's whole value: an environment variable, optionally after a scheme word
#: (``Bearer ${PROVISIONING_TOKEN}``).
SECRET_VALUE = re.compile(r"(?:[A-Za-z][A-Za-z0-9._-]* )?\$\{[A-Za-z_][A-Za-z0-9_]*\}")
#: Header names that always carry a credential, whatever the file says.
SECRET_HEADER = re.compile(
    r"authorization|proxy-authorization|cookie|.*api[-_]?key.*|.*token.*|.*secret.*",
    re.IGNORECASE,
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def check_pointer(pointer: str) -> str:
    """``pointer`` if it is a JSON Pointer (RFC 6901), else ValueError saying why."""
    if pointer and not pointer.startswith("/"):
        raise ValueError(f"{pointer!r} is not a JSON Pointer: it starts with / (or is empty)")
    if re.search(r"~(?![01])", pointer):
        raise ValueError(f"{pointer!r} is not a JSON Pointer: ~ is written ~0, / inside a key ~1")
    return pointer


#: A JSON Pointer (RFC 6901) into a response body, checked where the file gives it.
Pointer = Annotated[str, AfterValidator(check_pointer)]


def _strict() -> ConfigDict:
    return ConfigDict(extra="forbid", frozen=True)


class ToolInput(Parameter):
    """One typed input of a tool: a plan parameter's types and limits, without the question.

    ``sensitive`` inputs are masked in the audit and logs whatever the plan says.
    """

    model_config = _strict()

    name: str = Field(default="", description="Filled from the key in 'inputs'.")
    prompt: str = Field(default="-", description="Unused for a tool input.", exclude=True)
    required: bool = Field(default=True, description="A plan must map it; else it may be left out.")
    description: str = Field(default="", description="What the value is, for integrators.")


class Header(BaseModel):
    """A header with a value, marked secret when its name does not say so."""

    model_config = _strict()

    value: str = Field(min_length=1)
    secret: bool = Field(
        default=False,
        description="The value is a credential: it must be ${ENV_NAME}, never written here.",
    )


class Answer(BaseModel):
    """Error answers of one meaning: by status and, optionally, by values in the body."""

    model_config = _strict()

    status: list[int] = Field(min_length=1, description="HTTP status codes (4xx or 5xx).")
    when: dict[Pointer, Any] = Field(
        default_factory=dict,
        description="JSON Pointer -> the value it must hold, e.g. {/kind: refused}, for a "
        "system that answers several meanings with one status.",
    )
    message: Pointer = Field(
        description="JSON Pointer (RFC 6901) to the plain-words reason in the response body; "
        "an answer without one there does not match."
    )

    @field_validator("status")
    @classmethod
    def _errors(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 400 <= code <= 599:
                raise ValueError(f"{code} is not an error status (4xx or 5xx)")
        return codes


class Refusal(Answer):
    """Answers that mean the system refused the values it was given: enter them again."""

    status: list[int] = Field(
        default=[400, 409, 422],
        min_length=1,
        description="HTTP status codes (4xx) that mean refused, when the message is there.",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="The inputs the refusal is about, so the conversation asks for them again.",
    )
    arguments: Pointer | None = Field(
        default=None,
        description="JSON Pointer to a list of the refused inputs' names in the body; "
        "'inputs' applies when it names none of the declared inputs.",
    )
    choices: Pointer | None = Field(
        default=None, description="JSON Pointer to a list of the values accepted."
    )

    @field_validator("status")
    @classmethod
    def _client_errors(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 400 <= code <= 499:
                raise ValueError(f"{code} is not a 4xx status: only those mean refused")
        return codes


class Fault(Answer):
    """Answers that mean something on site needs fixing, then the tool is called again."""

    remedy: Pointer = Field(description="JSON Pointer to what the technician does on site.")
    confirm: Pointer = Field(
        description="JSON Pointer to the word the technician answers once done."
    )
    retry_args: Pointer | None = Field(
        default=None,
        description="JSON Pointer to an object of inputs to change when calling again.",
    )


class Retry(BaseModel):
    """Automatic retries of transient failures, for idempotent tools only."""

    model_config = _strict()

    retries: int = Field(default=2, ge=0, le=10, description="Extra tries after the first.")
    backoff: float = Field(default=0.2, ge=0, le=60, description="Seconds before the 1st retry.")
    max_backoff: float = Field(default=5.0, ge=0, le=300, description="Longest wait, seconds.")
    jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each wait varies by up to this fraction either way."
    )


class Breaker(BaseModel):
    """A circuit breaker per host: after ``failures`` in a row, calls fail at once."""

    model_config = _strict()

    failures: int = Field(default=5, ge=1, le=1000, description="Failures in a row that open it.")
    cooldown: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds open before one trial call is let through.",
    )


class HttpTool(BaseModel):
    """One tool that calls an HTTP API."""

    model_config = _strict()

    description: str = Field(min_length=1)
    action: str | None = Field(
        default=None, description='How a failure message starts, like "Activating the ONT".'
    )
    inputs: dict[str, ToolInput] = Field(default_factory=dict)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    url: str = Field(description="http(s) URL; its path may name inputs in braces: /onts/{fsan}.")
    query: dict[str, str] = Field(default_factory=dict, description="Query values (templates).")
    headers: dict[str, str | Header] = Field(
        default_factory=dict,
        description="Literal for plain headers; ${ENV_NAME} for secret ones (read at start).",
    )
    body: Any = Field(default=None, description="A JSON body template, from the inputs.")
    outputs: dict[str, Pointer] = Field(
        default_factory=dict, description="Output name -> JSON Pointer (RFC 6901) in the response."
    )
    refused: Refusal | None = None
    fault: Fault | None = Field(
        default=None, description="A fault on site the technician can fix, then confirm."
    )
    failed: Answer | None = Field(
        default=None,
        description="Answers told to the technician as they are: nothing entered again or "
        "retried helps (only escalating).",
    )
    transient: list[int] = Field(
        default=[429, 500, 502, 503, 504],
        description="Statuses that mean 'try again'; timeouts and connection errors always do.",
    )
    timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds one try may take.")
    retry: Retry | None = Field(default=None, description="Only for idempotent tools.")
    idempotency_key: str | None = Field(
        default=None, description="The header that carries the call's idempotency key."
    )
    read_only: bool = False
    idempotent: bool = False

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("inputs"), dict):
            inputs = {
                key: {"name": key, **value} if isinstance(value, dict) else value
                for key, value in data["inputs"].items()
            }
            data = {**data, "inputs": inputs}
        return data

    @field_validator("inputs", "outputs")
    @classmethod
    def _names(cls, values: dict[str, Any]) -> dict[str, Any]:
        for name in values:
            if not NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a name: lower case, digits and _, like fsan")
        return values

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise ValueError("the host is fixed: only the path may name inputs")
        if parts.query or parts.fragment:
            raise ValueError("put query values in 'query', and no fragment in the URL")
        return url

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str | Header]) -> dict[str, str | Header]:
        for name in headers:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
        return headers

    @field_validator("idempotency_key")
    @classmethod
    def _key_header(cls, name: str | None) -> str | None:
        if name is not None and not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name")
        return name

    @field_validator("transient")
    @classmethod
    def _errors(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 400 <= code <= 599:
                raise ValueError(f"{code} is not an error status (4xx or 5xx)")
        return codes

    def templates(self) -> Iterator[tuple[str, str]]:
        """(JSON path relative to the tool, template) for the URL, query values and body."""
        yield ".url", urlsplit(self.url).path
        for key, value in self.query.items():
            yield f".query{_key(key)}", value
        yield from _strings(self.body, ".body")

    @property
    def sensitive(self) -> frozenset[str]:
        """The inputs masked in the audit and logs."""
        return frozenset(name for name, spec in self.inputs.items() if spec.sensitive)

    @property
    def origin(self) -> str:
        """scheme://host:port, the unit of connection pools and breakers."""
        return origin_of(self.url)


class ToolsFile(BaseModel):
    """A tools file: HTTP tools by name, and the breaker settings of the hosts they call."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Lets editors find tools.schema.json; it means nothing to the program.
    schema_ref: str | None = Field(default=None, alias="$schema", exclude=True)
    tools: dict[str, HttpTool]
    breaker: Breaker = Field(default_factory=Breaker, description="For every host by default.")
    hosts: dict[str, Breaker] = Field(
        default_factory=dict,
        description="A breaker of its own per origin, like https://provisioning.example:443.",
    )

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, tools: dict[str, HttpTool]) -> dict[str, HttpTool]:
        for name in tools:
            if not NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a tool name: lower case, digits and _")
        return tools

    def breaker_for(self, origin: str) -> Breaker:
        """The breaker settings of one origin (as ``origin_of`` writes it)."""
        for key, breaker in self.hosts.items():
            if origin_of(key) == origin:
                return breaker
        return self.breaker


def origin_of(url: str) -> str:
    """scheme://host:port of a URL, with the default port written out."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def file_problems(tools_file: ToolsFile) -> list[tuple[str, str]]:
    """What the models cannot see field by field, as (JSON path, message)."""
    problems: list[tuple[str, str]] = []
    for name, tool in tools_file.tools.items():
        problems += [(f"$.tools.{name}{at}", message) for at, message in _tool_problems(tool)]
    origins = {tool.origin for tool in tools_file.tools.values()}
    for origin in tools_file.hosts:
        if origin_of(origin) not in origins:
            known = ", ".join(sorted(origins)) or "none"
            problems.append(
                (f"$.hosts{_key(origin)}", f"no tool calls {origin} (the tools' hosts: {known})")
            )
    return problems


def _tool_problems(tool: HttpTool) -> list[tuple[str, str]]:
    """One tool's problems, at paths relative to the tool."""
    problems: list[tuple[str, str]] = []
    declared = set(tool.inputs)
    for where, template in tool.templates():
        try:
            names = template_fields(template)
        except ValueError as exc:
            problems.append((where, str(exc)))
            continue
        for name in names:
            if name not in declared:
                problems.append(
                    (where, f"{{{name}}} is not a declared input ({_listed(declared)})")
                )
            elif where == ".url" and not tool.inputs[name].required:
                problems.append((where, f"{{{name}}} is optional, and a URL path needs a value"))
    if tool.body is not None and tool.method not in _BODY_METHODS:
        problems.append((".body", f"a {tool.method} request has no body"))
    if tool.retry is not None and tool.retry.retries and not tool.idempotent:
        problems.append(
            (
                ".retry",
                "only an idempotent tool is retried: calling one that is not twice may act twice",
            )
        )
    if RESERVED_OUTPUT in tool.outputs:
        problems.append(
            (f".outputs.{RESERVED_OUTPUT}", "this name is reserved for the audit; choose another")
        )
    if tool.read_only and not tool.idempotent:
        problems.append((".read_only", "a read-only tool is idempotent too: set idempotent: true"))
    if tool.refused is not None:
        for index, name in enumerate(tool.refused.inputs):
            if name not in declared:
                problems.append((f".refused.inputs[{index}]", f"{name!r} is not a declared input"))
    for name, header in tool.headers.items():
        value = header.value if isinstance(header, Header) else header
        if is_secret(name, header) and not SECRET_VALUE.fullmatch(value):
            problems.append(
                (
                    f".headers{_key(name)}",
                    f"{name} is a secret header: its value must come from the environment, "
                    "like ${PROVISIONING_TOKEN} or Bearer ${PROVISIONING_TOKEN}",
                )
            )
    return problems


def _listed(names: set[str]) -> str:
    return "declared: " + ", ".join(sorted(names)) if names else "it declares none"


def is_secret(name: str, header: str | Header) -> bool:
    """Whether a header carries a credential: by its name, or marked so."""
    return bool(SECRET_HEADER.fullmatch(name)) or (isinstance(header, Header) and header.secret)


def template_fields(template: str) -> list[str]:
    """The names a template fills, in order; ValueError on a malformed template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not NAME.fullmatch(name) or spec or conversion:
            raise ValueError(
                f"{{{name}}} in {template!r}: a template names one input, like {{fsan}}"
            )
        names.append(name)
    return names


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(JSON path, string) for every string in a JSON value, keys excluded."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, where + _key(str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def header_path(tool: str, header: str) -> str:
    """The JSON path of one tool's header, for messages."""
    return f"$.tools.{tool}.headers{_key(header)}"


def _key(key: str) -> str:
    """A key as a JSON path step: ``.name``, or ``["odd key"]``."""
    return f".{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"[{json.dumps(key)}]"


def tools_json_schema() -> dict[str, Any]:
    """The JSON Schema of a tools file, derived from the models."""
    schema = ToolsFile.model_json_schema(by_alias=True)
    tool_input = schema["$defs"]["ToolInput"]
    tool_input["required"] = [k for k in tool_input.get("required", []) if k != "name"]
    tool_input["properties"].pop("prompt", None)
    if not tool_input["required"]:
        del tool_input["required"]
    return {"$schema": SCHEMA_DIALECT, **schema}


def write_tools_schema(path: Path) -> None:
    """Write ``tools_json_schema()`` to ``path`` (plans/tools.schema.json in the repository)."""
    text = json.dumps(tools_json_schema(), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


__all__ = [
    "Answer",
    "Breaker",
    "Fault",
    "Header",
    "HttpTool",
    "Refusal",
    "Retry",
    "ToolInput",
    "ToolsFile",
    "check_pointer",
    "file_problems",
    "header_path",
    "is_secret",
    "origin_of",
    "template_fields",
    "tools_json_schema",
    "write_tools_schema",
]
