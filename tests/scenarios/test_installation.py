"""Whole installation conversations through the in-memory bridge, on real SQLite files."""

from __future__ import annotations

import logging

import pytest

from bot.wiring import Services
from bridges.memory import MemoryBridge
from tests.conftest import ServicesFactory
from tests.scenarios.helpers import question, said

# AB1234's most urgent order is ORD-1003, an installation already in progress.
TOP = "ORD-1003"


async def start_top_installation(services: Services) -> MemoryBridge:
    chat = MemoryBridge(services.orchestrator, "AB1234")
    first = await chat.start()
    assert question(first).needs == "cuid"
    proposal = await chat.say("AB1234")
    assert "Hi Alice Brown" in said(proposal)
    assert TOP in question(proposal).text and question(proposal).choices == ["yes", "no"]
    started = await chat.say("yes")
    assert question(started).needs == "fsan"
    return chat


async def test_a_technician_completes_a_full_installation(services: Services) -> None:
    chat = await start_top_installation(services)
    assert question(await chat.say("alcl90abcdef")).needs == "model"
    model_q = await chat.say("g-240w-f")
    assert question(model_q).needs == "ethernet_port"
    wifi_q = await chat.say("2")
    text = said(wifi_q)
    assert "ONT ALCL90ABCDEF (G-240W-F) is active" in text
    assert "Light levels OK" in text
    assert question(wifi_q).needs == "ssid"
    assert question(await chat.say("HomeNet")).needs == "wifi_password"
    online_q = await chat.say("s3cret-passw0rd")
    assert "Speed test passed for the 1G tier" in said(online_q)
    assert question(online_q).needs == "customer_online"
    done = await chat.say("yes")
    assert f"Order {TOP} is closed" in said(done)
    menu = question(done)
    assert menu.choices == ["next", "help", "end"]
    assert "open orders left" in menu.text

    order = await services.workorders.get_order(TOP)
    assert order is not None and order.status == "completed"
    item = await services.workorders.get_inventory("ALCL90ABCDEF")
    assert item is not None and item.status == "installed"
    assert "s3cret-passw0rd" not in str(await services.audit.audit_rows())


async def test_three_values_in_one_dict_literal_message_are_all_taken(services: Services) -> None:
    chat = await start_top_installation(services)
    replies = await chat.say("{'ethernet_port': 2, 'fsan': 'ALCL1A2B3C4D', 'model': 'G-010G-P'}")
    assert "ONT ALCL1A2B3C4D (G-010G-P) is active" in said(replies)
    assert question(replies).needs == "ssid"


async def test_key_value_pairs_may_carry_values_for_later_steps(services: Services) -> None:
    chat = await start_top_installation(services)
    replies = await chat.say("fsan=ALCL1A2B3C4D model=G-010G-P ethernet_port=1 ssid=Casa")
    # ssid was given early, so the Wi-Fi step asks only for the password.
    assert question(replies).needs == "wifi_password"


async def test_a_bad_value_is_asked_again_with_the_reason_and_an_example(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    bad = await chat.say("XYZ")
    assert "isn't valid" in said(bad) and "ALCL1A2B3C4D" in said(bad)
    assert question(bad).needs == "fsan"
    bad_port = await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=9")
    assert "The Ethernet port isn't valid" in said(bad_port)
    assert question(bad_port).needs == "ethernet_port"
    ok = await chat.say("3")
    assert "is active" in said(ok)


async def test_three_bad_values_in_a_row_offer_escalation(services: Services) -> None:
    chat = await start_top_installation(services)
    await chat.say("nope")
    await chat.say("still no")
    offer = await chat.say("ALCL")
    assert question(offer).choices == ["try again", "escalate"]
    again = await chat.say("try again")
    assert question(again).needs == "fsan"


async def test_an_unknown_serial_fails_in_plain_words_and_can_be_escalated(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    failed = await chat.say("fsan=ALCL00000000 model=716GE ethernet_port=1")
    asked = question(failed)
    assert "ALCL00000000 is not in inventory" in asked.text
    assert "These stay as they are: the ONT model (716GE) and the Ethernet port (1)" in asked.text
    assert asked.needs == "fsan" and "retry" not in asked.choices
    escalated = await chat.say("escalate")
    assert "escalated ORD-1003" in said(escalated)
    assert question(escalated).choices == ["next", "help", "end"]
    order = await services.workorders.get_order(TOP)
    assert order is not None and order.status == "escalated"


async def test_after_a_model_mismatch_the_values_can_be_entered_again(services: Services) -> None:
    chat = await start_top_installation(services)
    failed = await chat.say("fsan=CXNK00A1B2C3 model=716GE ethernet_port=1")
    edit = question(failed)
    assert "is a G-240W-F in inventory, not a 716GE" in edit.text
    assert "These stay as they are: the Ethernet port (1)" in edit.text
    assert edit.needs == "fsan" and "Currently CXNK00A1B2C3" in edit.text
    assert question(await chat.say("keep")).needs == "model"
    activated = await chat.say("G-240W-F")
    assert "ONT CXNK00A1B2C3 (G-240W-F) is active" in said(activated)


async def test_a_transient_tool_failure_is_reported_then_a_retry_succeeds(
    make_services: ServicesFactory,
) -> None:
    # Three injected failures outlast the agent's own two retries.
    services = await make_services(sim_failures="run_speed_test:3", tool_retries=2)
    chat = await start_top_installation(services)
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    failed = await chat.say("skip")
    assert "Skipped" in said(failed)
    assert question(failed).choices == ["retry", "escalate"]
    retried = await chat.say("retry")
    assert "Speed test passed" in said(retried)
    assert question(retried).needs == "customer_online"


async def test_a_failed_step_keeps_every_value_already_collected(services: Services) -> None:
    chat = await start_top_installation(services)
    await chat.say("fsan=ALCLC0FFEE02 model=G-240W-F ethernet_port=4")  # low light
    status = await chat.say("status")
    values = status[0].data["values"]  # type: ignore[index]
    assert values["fsan"] == "ALCLC0FFEE02" and values["ethernet_port"] == 4


async def test_status_masks_sensitive_values(services: Services) -> None:
    chat = await start_top_installation(services)
    # Given ahead of its step: held (masked) until the Wi-Fi step has used it.
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2 wifi_password=hunter2-hunter2")
    status = await chat.say("status")
    assert "hunter2" not in said(status) and "hunter2" not in str(status[0].data)
    assert "wifi_password=••••" in said(status)
    await chat.say("ssid=HomeNet")
    status = await chat.say("status")
    assert "Step 6 of 7" in said(status)
    assert "wifi_password" not in said(status), "the password outlived its step"


async def test_skip_is_refused_on_a_step_that_may_not_be_skipped(services: Services) -> None:
    chat = await start_top_installation(services)
    refused = await chat.say("skip")
    assert "can't be skipped" in said(refused)
    assert question(refused).needs == "fsan"


async def test_the_wifi_step_may_be_skipped(services: Services) -> None:
    chat = await start_top_installation(services)
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    skipped = await chat.say("skip")
    assert "Skipped: " in said(skipped)
    assert question(skipped).needs == "customer_online"


async def test_a_sensitive_value_never_reaches_the_logs(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = await start_top_installation(services)
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await chat.say("ssid=HomeNet wifi_password=hunter2-hunter2")
    await chat.say("ssid=HomeNet wifi_password=x")  # refused: too short, still not logged
    await chat.say("status")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "hunter2" not in logged and "wifi_password=x" not in logged
    assert "hunter2" not in str(await services.audit.audit_rows())


async def test_a_dirty_connector_clears_once_the_technician_has_cleaned_it(
    services: Services,
) -> None:
    chat = await start_top_installation(services)
    dark = question(await chat.say("fsan=ALCLC0FFEE02 model=G-240W-F ethernet_port=2"))
    assert "Clean and re-seat the fiber connector" in dark.text
    assert dark.choices == ["cleaned", "escalate"]  # a plain retry cannot help
    checked = await chat.say("cleaned")
    assert "Light levels OK" in said(checked)
    assert question(checked).needs == "ssid"


async def test_a_damaged_fiber_offers_only_escalation_to_a_fiber_crew(services: Services) -> None:
    chat = await start_top_installation(services)
    dark = question(await chat.say("fsan=ALCLC0FFEE0E model=G-240W-F ethernet_port=2"))
    assert "fiber crew" in dark.text and dark.choices == ["escalate"]
    retried = await chat.say("retry")
    assert "Please answer “escalate”" in said(retried) and question(retried).choices == ["escalate"]
    handed = await chat.say("escalate")
    assert "escalated ORD-1003" in said(handed)
    reasons = [e["reason"] for e in await services.workorders.escalations("AB1234")]
    assert any("fiber crew" in reason for reason in reasons)


async def test_a_customer_not_online_yet_is_asked_again_not_retried(services: Services) -> None:
    chat = await start_top_installation(services)
    await chat.say("fsan=ALCL90ABCDEF model=G-240W-F ethernet_port=2")
    await chat.say("ssid=Home wifi_password=kettle-on-tuesday")
    not_yet = question(await chat.say("no"))
    assert not_yet.needs == "customer_online" and "retry" not in not_yet.choices
    closed = await chat.say("yes")
    assert "Order ORD-1003 is closed" in said(closed)
