"""Declared HTTP tools run by the inner agent against a real API on a free port."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from orchestrator_core.http_tools import HttpToolRuntime, load_tools_file
from orchestrator_core.inner_agent import KEY_FIELD, CallContext, InnerAgent
from orchestrator_core.secrets import FernetSecrets
from orchestrator_core.simulator import NetworkSimulator
from orchestrator_core.tools import ToolContext, default_registry
from tests.orchestrator_core.http_tools.api import DARK, DIRTY, IN_USE, TOKEN, UNKNOWN, ApiState
from tests.own_servers import free_port
from tests.workorder_db import WorkOrderDB

ACTIVATE = {"fsan": "alcl1234abcd", "ethernet_port": 2}


def call(step: str = "activate", attempt: int = 1, session: str = "s1") -> CallContext:
    return CallContext(session_id=session, order_id="ORD-1005", step_id=step, attempt=attempt)


async def test_a_declared_tool_sends_the_filled_request_and_maps_the_outputs(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("provision_ont", ACTIVATE, call())
    assert result.ok, result.message
    assert result.outputs == {"activation_id": "ACT-ALCL1234ABCD", "status": "active"}
    (request,) = api.requests
    assert request.path == "/onts/ALCL1234ABCD/activate"  # normalized as declared
    assert json.loads(request.body) == {"port": 2, "pin": None, "note": "port 2"}


async def test_a_value_the_system_refuses_reaches_the_technician_in_its_words(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("provision_ont", {**ACTIVATE, "fsan": IN_USE}, call())
    assert not result.ok and result.error_kind == "refused" and result.attempts == 1
    assert result.message == f"Activating the ONT failed: serial {IN_USE} already in use."
    assert result.refused == ("fsan",)  # so the conversation asks for the serial again


async def test_arguments_are_checked_like_plan_parameters_before_any_request(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("provision_ont", {**ACTIVATE, "ethernet_port": 9}, call())
    assert not result.ok and result.error_kind == "bad_arguments"
    assert result.refused == ("ethernet_port",)
    assert "9 is not between 1 and 4" in result.message
    assert api.requests == []


async def test_5xx_on_an_idempotent_tool_is_retried_with_the_same_key(
    agent: InnerAgent, api: ApiState, db: WorkOrderDB
) -> None:
    api.fail("activate", "503", "500")
    result = await agent.execute_task("provision_ont", ACTIVATE, call())
    assert result.ok and result.attempts == 3
    keys = {r.key for r in api.requests}
    assert len(api.requests) == 3 and len(keys) == 1 and None not in keys
    rows = await db.audit.audit_rows("s1")
    assert [(r["try_no"], r["error_kind"]) for r in rows] == [
        (1, "transient"),
        (2, "transient"),
        (3, None),
    ]
    assert {r["result"][KEY_FIELD] for r in rows} == keys  # the audit keeps the key


async def test_a_timeout_on_an_idempotent_tool_is_retried(agent: InnerAgent, api: ApiState) -> None:
    api.fail("light", "slow")
    result = await agent.execute_task("check_light", {"order_id": "ORD-1005"}, call("light"))
    assert result.ok and result.attempts == 2
    assert result.outputs == {"rx_dbm": -18.5}


async def test_a_tool_that_is_not_idempotent_is_not_retried(
    agent: InnerAgent, api: ApiState
) -> None:
    api.fail("tickets", "503")
    result = await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket"))
    assert not result.ok and result.error_kind == "transient" and result.attempts == 1
    assert "is having trouble (HTTP 503)" in result.message
    assert len(api.requests) == 1


async def test_a_technicians_retry_after_a_timeout_sends_the_same_key_and_acts_once(
    agent: InnerAgent, api: ApiState, db: WorkOrderDB
) -> None:
    api.fail("tickets", "slow")  # the API acts, then answers too late
    first = await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket"))
    assert not first.ok and first.error_kind == "transient" and first.attempts == 1
    assert "did not answer within 0.5 seconds" in first.message
    # The technician chooses "retry": the conversation makes it a new attempt.
    second = await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket", 2))
    assert second.ok and second.outputs == {"ticket": "T-1"}
    assert api.tickets == 1  # one effect
    assert len({r.key for r in api.requests}) == 1
    keys = {r["result"][KEY_FIELD] for r in await db.audit.audit_rows("s1")}
    assert keys == {api.requests[0].key}


async def test_new_values_make_a_new_key(agent: InnerAgent, api: ApiState) -> None:
    await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket"))
    await agent.execute_task("open_ticket", {"note": "cable cut"}, call("ticket", 2))
    assert api.tickets == 2 and len({r.key for r in api.requests}) == 2


async def test_a_replayed_call_is_answered_from_the_audit_without_a_request(
    agent: InnerAgent, api: ApiState
) -> None:
    first = await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket"))
    replay = await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket"))
    assert replay.replayed and replay.outputs == first.outputs == {"ticket": "T-1"}
    assert len(api.requests) == 1


async def test_calls_to_one_host_reuse_a_kept_alive_connection(
    agent: InnerAgent, api: ApiState
) -> None:
    for attempt in (1, 2, 3):
        result = await agent.execute_task(
            "check_light", {"order_id": "ORD-1005"}, call("l", attempt)
        )
        assert result.ok
    assert len({r.port for r in api.requests}) == 1


async def test_the_breaker_opens_answers_at_once_and_closes_after_recovery(
    agent: InnerAgent, api: ApiState, runtime: HttpToolRuntime, base: str
) -> None:
    api.fail("tickets", "503", "503", "503")
    for attempt in (1, 2, 3):
        failed = await agent.execute_task("open_ticket", {"note": "x"}, call("t", attempt))
        assert failed.error_kind == "transient"
    assert runtime.breaker(base).state == "open"

    refused = await agent.execute_task("open_ticket", {"note": "x"}, call("t", 4))
    assert not refused.ok and refused.error_kind == "transient" and refused.attempts == 1
    assert "failed 3 times in a row" in refused.message and "try again in" in refused.message
    assert len(api.requests) == 3  # the open breaker sent nothing

    # The light lookup shares the host, so the breaker: no automatic retries either.
    lookup = await agent.execute_task("check_light", {"order_id": "ORD-1005"}, call("l"))
    assert lookup.attempts == 1 and len(api.requests) == 3

    await asyncio.sleep(0.35)  # the cool-down passes: one trial call goes through
    recovered = await agent.execute_task("open_ticket", {"note": "x"}, call("t", 5))
    assert recovered.ok
    assert runtime.breaker(base).state == "closed"


async def test_a_failed_trial_opens_the_breaker_again(
    agent: InnerAgent, api: ApiState, runtime: HttpToolRuntime, base: str
) -> None:
    api.fail("tickets", "503", "503", "503", "503")
    for attempt in (1, 2, 3):
        await agent.execute_task("open_ticket", {"note": "x"}, call("t", attempt))
    await asyncio.sleep(0.35)
    trial = await agent.execute_task("open_ticket", {"note": "x"}, call("t", 4))
    assert trial.error_kind == "transient" and len(api.requests) == 4
    assert runtime.breaker(base).state == "open"


async def test_a_rejected_credential_is_a_misconfiguration_without_the_header_value(
    tools_path: Path, api: ApiState, db: WorkOrderDB, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wr0ng-t0ken-value"
    runtime = HttpToolRuntime(load_tools_file(tools_path), {"TEST_PROVISIONING_TOKEN": wrong})
    registry = default_registry()
    runtime.register(registry)
    agent = InnerAgent(registry, ToolContext(db, NetworkSimulator()), db.audit)
    caplog.set_level(logging.DEBUG)
    try:
        result = await agent.execute_task("provision_ont", ACTIVATE, call())
    finally:
        await runtime.aclose()
    assert not result.ok and result.error_kind == "failed" and result.attempts == 1
    assert "did not accept TechAssist's credentials (HTTP 401)" in result.message
    assert "provision_ont tool needs fixing" in result.message
    assert wrong not in result.message and wrong not in caplog.text
    assert "misconfigured" in caplog.text  # the operator finds it in the log


async def test_an_answer_that_is_not_json_is_a_misconfiguration(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("broken_lookup", {}, call("broken"))
    assert not result.ok and result.error_kind == "failed" and result.attempts == 1
    assert "answered with something that is not JSON" in result.message


async def test_no_header_value_or_sensitive_argument_reaches_the_logs_or_the_audit(
    agent: InnerAgent, api: ApiState, db: WorkOrderDB, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pin = "PIN-7391-SECRET"
    api.fail("activate", "500")
    ok = await agent.execute_task("provision_ont", {**ACTIVATE, "pin": pin}, call())
    refused = await agent.execute_task(
        "provision_ont", {**ACTIVATE, "fsan": IN_USE, "pin": pin}, call(attempt=2)
    )
    assert ok.ok and refused.error_kind == "refused"
    assert any(json.loads(r.body).get("pin") == pin for r in api.requests)  # it was sent
    audit = json.dumps(await db.audit.audit_rows("s1"))
    for secret in (pin, TOKEN):
        assert secret not in caplog.text
        assert secret not in audit
        assert secret not in ok.model_dump_json() + refused.model_dump_json()


async def test_an_answer_without_a_declared_output_is_a_misconfiguration(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("light_wrong_output", {"order_id": "ORD-1005"}, call("w"))
    assert not result.ok and result.error_kind == "failed" and result.attempts == 1
    assert "answer has nothing at '/levels/3/rx_dbm' for the output 'rx_dbm'" in result.message


async def test_a_refused_connection_is_transient_and_retried(
    tmp_path: Path, db: WorkOrderDB
) -> None:
    path = tmp_path / "down.yaml"
    path.write_text(
        "tools:\n  lookup:\n    description: A host nothing listens on.\n"
        f"    url: http://127.0.0.1:{free_port()}/x\n"
        "    idempotent: true\n    retry: {retries: 1, backoff: 0.01}\n"
    )
    runtime = HttpToolRuntime(load_tools_file(path), {})
    registry = default_registry()
    runtime.register(registry)
    agent = InnerAgent(registry, ToolContext(db, NetworkSimulator()), db.audit)
    try:
        result = await agent.execute_task("lookup", {}, call("down"))
    finally:
        await runtime.aclose()
    assert not result.ok and result.error_kind == "transient" and result.attempts == 2
    assert "could not be reached (connection refused)" in result.message


async def test_a_fault_on_site_says_what_to_do_and_how_to_call_again(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("light_levels", {"fsan": DIRTY}, call("light"))
    assert not result.ok and result.error_kind == "fault" and result.attempts == 1
    assert result.message.endswith("The light is too low.")
    assert result.remedy == "Clean and re-seat the fiber connector"
    assert result.confirm == "cleaned"
    assert result.retry_args == {"cleaned": True}  # only the tool's own inputs
    again = await agent.execute_task(
        "light_levels", {"fsan": DIRTY, **result.retry_args}, call("light", 2)
    )
    assert again.ok and again.outputs == {"rx_power_dbm": -17.5}


async def test_a_declared_failure_is_told_as_the_system_says_it(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("light_levels", {"fsan": DARK}, call("light"))
    assert not result.ok and result.error_kind == "failed" and result.attempts == 1
    assert result.message.endswith("No light at all: the fiber is cut.")
    assert "needs fixing" not in result.message  # not a misconfiguration


async def test_the_refused_inputs_may_come_from_the_answer(
    agent: InnerAgent, api: ApiState
) -> None:
    result = await agent.execute_task("light_levels", {"fsan": UNKNOWN}, call("light"))
    assert result.error_kind == "refused" and result.refused == ("fsan",)
    assert result.message.endswith(f"No ONT {UNKNOWN} is known.")


async def test_instances_sharing_the_secret_key_send_the_same_key_and_others_do_not(
    runtime: HttpToolRuntime, db: WorkOrderDB, api: ApiState
) -> None:
    # A technician's retry may land on another instance: with the shared secret key it
    # sends the same idempotency key. The key is keyed by that secret, so it cannot be
    # recomputed (or a short sensitive input guessed from it) without the secret.
    registry = default_registry()
    runtime.register(registry)
    shared, other = FernetSecrets.new_key(), FernetSecrets.new_key()
    # Each call a new attempt (the technician's "retry"), so none is answered from the audit.
    for attempt, secret in enumerate((shared, shared, other), start=1):
        agent = InnerAgent(
            registry,
            ToolContext(db, NetworkSimulator()),
            db.audit,
            key_secret=FernetSecrets([secret]).derive("idempotency keys"),
        )
        await agent.execute_task("open_ticket", {"note": "pole down"}, call("ticket", attempt))
    first, again, elsewhere = (r.key for r in api.requests)
    assert first == again and first != elsewhere
    assert api.tickets == 2  # the second instance's call was answered from the first effect
