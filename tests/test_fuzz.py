"""Property tests over what strangers and operators feed in: frames, messages, plan files, HTTP.

Each property says that no input raises anything but our own error types. The
runs are bounded and derandomized, so the suite stays fast and CI stable;
timing is tested on a fixed hostile set (tests/scenarios/test_hostile_input.py),
never per example here.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bot.app import create_app
from bot.simulate import build_service, create_simulator_app
from bot.wiring import build
from bridges.websocket import parse_frame
from orchestrator_core.errors import PlanError
from orchestrator_core.params import MAX_KEYS, parse_values
from orchestrator_core.plans import load_plan
from orchestrator_core.tools import default_registry
from orchestrator_core.turns import encodable
from plans import PLANS_DIR
from tests.conftest import make_settings

BOUNDED = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Any character, lone surrogates included: JSON escapes such as "\ud800" decode to them.
CHARS = st.characters(codec=None, exclude_categories=()) | st.characters(
    min_codepoint=0xD800, max_codepoint=0xDFFF
)
TEXT = st.text(alphabet=CHARS, max_size=40)
SOUP = st.text(alphabet="{}[]()'\"=,;:. \\\nabcAB019_-", max_size=200)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", "{": "}", "(": ")"}[opener]
    if opener == "{":
        return '{"a":' * depth + "1" + "}" * depth
    return opener * depth + closer * depth


NESTED = st.builds(_nested, st.integers(0, 3000), st.sampled_from("[{("))


def _dumped(value: Any, as_python: bool) -> str:
    return repr(value) if as_python else json.dumps(value)


# -- the frame parser ----------------------------------------------------------------


@BOUNDED
@given(
    st.one_of(
        st.text(alphabet=CHARS, max_size=300),
        SOUP,
        NESTED,
        JSON.map(json.dumps),
        st.builds(
            lambda data, kind: json.dumps({"type": kind, "data": data}),
            TEXT,
            st.sampled_from(["cuid", "message"]) | TEXT,
        ),
        st.builds(lambda extra: '{"type": "message", "data": "yes", "x": ' + extra + "}", NESTED),
    )
)
def test_a_frame_is_read_or_refused_and_what_is_read_can_be_stored(raw: str) -> None:
    frame = parse_frame(raw)
    if frame is not None:
        assert isinstance(frame.data, str) and isinstance(frame.type, str)
        assert encodable(frame.type) and (encodable(frame.data) or frame.data == raw)


# -- the multi-parameter parser ------------------------------------------------------


@BOUNDED
@given(
    st.one_of(
        st.text(alphabet=CHARS, max_size=300),
        SOUP,
        NESTED,
        st.builds(_dumped, JSON, st.booleans()),
        st.builds(
            lambda pairs: " ".join(f"{k}={v}" for k, v in pairs),
            st.lists(st.tuples(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), TEXT), max_size=80),
        ),
        st.builds(
            lambda n: "{" + ",".join(f"'k{i}': {i}" for i in range(n)) + "}", st.integers(0, 800)
        ),
    )
)
def test_a_message_gives_named_values_or_none(text: str) -> None:
    values = parse_values(text)
    if values is not None:
        assert all(isinstance(key, str) and key for key in values)
        assert len(values) <= MAX_KEYS


# -- the plan loader -----------------------------------------------------------------

BUNDLED = json.loads((PLANS_DIR / "installation.json").read_text(encoding="utf-8"))


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*at, index))
    return found


PLAN_PATHS = _paths(BUNDLED)[1:]


def _at(path: tuple[Any, ...]) -> Any:
    value = BUNDLED
    for part in path:
        value = value[part]
    return value


TEXT_PATHS = [path for path in PLAN_PATHS if isinstance(_at(path), str)]


def _mutated(path: tuple[Any, ...], replacement: Any) -> Any:
    plan = json.loads(json.dumps(BUNDLED))
    target = plan
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = replacement
    return plan


PLAN_TEXT = st.one_of(
    JSON.map(json.dumps),
    st.builds(_mutated, st.sampled_from(PLAN_PATHS), JSON).map(json.dumps),
    st.builds(_mutated, st.sampled_from(TEXT_PATHS), TEXT).map(json.dumps),
    st.builds(
        _mutated,
        st.sampled_from([p for p in PLAN_PATHS if p and p[-1] == "pattern"]),
        st.sampled_from([r"(a)\1", "(?=a)", "^(a+)+$", "[", "a{2000}", "\\"]) | TEXT,
    ).map(json.dumps),
    SOUP,
    NESTED,
    st.text(alphabet=CHARS, max_size=200),
)


@BOUNDED
@given(PLAN_TEXT)
def test_a_plan_file_loads_or_gives_plan_problems_and_what_loads_can_be_stored(text: str) -> None:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "installation.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # a legacy list plan
                plan = load_plan(path, registry)
        except PlanError as exc:
            assert exc.problems and all("installation.json: " in p for p in exc.problems)
            return
    plan.model_dump_json().encode("utf-8")  # a session's plan snapshot is stored as JSON


# -- the HTTP endpoints --------------------------------------------------------------


def test_the_http_endpoints_hold_to_their_openapi_schema(tmp_path: Path) -> None:
    """schemathesis over the real app, built by bot/wiring.py on a temporary data dir.

    Each operation of the app's OpenAPI schema is called in-process, with
    generated cases and with stray query parameters and headers on top, and
    must answer as its schema says, never with a server error.
    """
    services = asyncio.run(build(make_settings(tmp_path)))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(services))
        operations = []
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            operations.append(result.ok())
        assert {op.label for op in operations} >= {"GET /healthz", "GET /readyz"}
        for operation in operations:

            @settings(max_examples=25, derandomize=True, deadline=None, database=None)
            @given(
                case=operation.as_strategy(),
                query=st.dictionaries(TEXT.map(_sendable), TEXT.map(_sendable), max_size=4),
                headers=st.dictionaries(
                    st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True),
                    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126)),
                    max_size=4,
                ),
            )
            def conforms(
                case: schemathesis.Case[Any], query: dict[str, str], headers: dict[str, str]
            ) -> None:
                response = case.call(params=query, headers=headers)
                assert response.status_code < 500, (case.path, response.text)
                case.validate_response(response)

            conforms()
    finally:
        asyncio.run(services.aclose())


def test_the_simulator_endpoints_hold_to_their_openapi_schema(tmp_path: Path) -> None:
    """schemathesis over ``techassist simulate``'s app, with its admin endpoint on.

    Every operation answers as its schema says, never with a server error. A value
    the schema allows may still be refused (an unknown ONT model, a short Wi-Fi
    password): a documented 422 with a message is that API's contract, so the check
    that schema-valid data is accepted stays off.
    """
    service = build_service(make_settings(tmp_path, sim_admin_token="fuzz-token"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_simulator_app(service))
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert {op.label for op in operations} >= {"POST /onts/activate", "GET /admin/stats"}
    for operation in operations:
        # Faults the fuzzer would put in force (an hour's latency) stay out of reach.
        faults = operation.label == "PUT /admin/faults"

        @settings(max_examples=10, derandomize=True, deadline=None, database=None)
        @given(case=operation.as_strategy(), admin=st.just(False) if faults else st.booleans())
        def conforms(case: schemathesis.Case[Any], admin: bool) -> None:
            headers = {"Authorization": "Bearer fuzz-token"} if admin else {}
            response = case.call(headers=headers)
            assert response.status_code < 500, (case.path, response.text)
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        conforms()


def _sendable(text: str) -> str:
    """Text as an HTTP client can send it: a lone surrogate cannot go on the wire."""
    return text if encodable(text) else text.encode("utf-8", "replace").decode("utf-8")
