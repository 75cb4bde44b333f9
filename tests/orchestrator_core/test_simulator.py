"""The network simulator: deterministic readings and injected trouble."""

from __future__ import annotations

import time

import pytest

from orchestrator_core.errors import ArgumentRefused, ConfigError, TransientToolError
from orchestrator_core.simulator import (
    DAMAGED_FIBER,
    DIRTY_CONNECTOR,
    MODELS,
    TIERS,
    NetworkSimulator,
    SimulatorConfig,
    light_cause,
)


async def test_the_same_input_gives_the_same_reading_in_another_simulator() -> None:
    first, second = NetworkSimulator(SimulatorConfig()), NetworkSimulator(SimulatorConfig())
    for fsan in ("ALCL90ABCDEF", "CXNK00D4E5F6"):
        assert await first.check_light_levels(fsan) == await second.check_light_levels(fsan)
        assert await first.run_speed_test(fsan, "1G") == await second.run_speed_test(fsan, "1G")
    assert await first.run_line_test("ORD-1007") == await second.run_line_test("ORD-1007")
    one = await first.activate_ont("ORD-1", "ALCL90ABCDEF", "G-240W-F", 1)
    assert one == await second.activate_ont("ORD-1", "ALCL90ABCDEF", "G-240W-F", 2)


async def test_light_levels_stay_in_range_and_are_ok_from_minus_25_dbm() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    for i in range(200):
        reading = await sim.check_light_levels(f"ALCL{i:08X}")
        assert -27.0 <= reading["rx_power_dbm"] <= -8.0
        assert reading["light_ok"] is (reading["rx_power_dbm"] >= -25.0)


@pytest.mark.parametrize("tier", list(TIERS))
async def test_a_speed_test_meets_the_service_tier(tier: str) -> None:
    result = await NetworkSimulator(SimulatorConfig()).run_speed_test("ALCL90ABCDEF", tier)
    assert result["tier_met"] is True
    assert result["download_mbps"] >= TIERS[tier] and result["upload_mbps"] >= TIERS[tier]


async def test_an_unknown_tier_model_or_port_is_refused_naming_the_argument() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    with pytest.raises(ArgumentRefused, match="service tier 2G") as tier:
        await sim.run_speed_test("ALCL90ABCDEF", "2G")
    assert tier.value.arguments == ("service_tier",) and tier.value.choices == tuple(TIERS)
    with pytest.raises(ArgumentRefused, match="not a known ONT model") as model:
        await sim.activate_ont("ORD-1", "ALCL90ABCDEF", "HG8245", 1)
    assert model.value.arguments == ("model",) and model.value.choices == MODELS
    with pytest.raises(ArgumentRefused, match="port 7 does not exist") as port:
        await sim.activate_ont("ORD-1", "ALCL90ABCDEF", "716GE", 7)
    assert port.value.arguments == ("ethernet_port",)


async def test_the_device_refuses_a_wifi_name_or_password_without_repeating_the_password() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    with pytest.raises(ArgumentRefused, match="Wi-Fi name") as name:
        await sim.configure_wifi("ALCL90ABCDEF", "Café " * 7, "long enough")  # 35 bytes
    assert name.value.arguments == ("ssid",)
    for password in ("short", "pässwörd-with-umlauts"):
        with pytest.raises(ArgumentRefused, match="Wi-Fi password") as refused:
            await sim.configure_wifi("ALCL90ABCDEF", "Home", password)
        assert refused.value.arguments == ("wifi_password",)
        assert password not in str(refused.value)


async def test_a_dirty_connector_reads_good_light_once_cleaned_even_in_a_fresh_simulator() -> None:
    assert light_cause("ALCLC0FFEE02") == DIRTY_CONNECTOR
    dark = await NetworkSimulator(SimulatorConfig()).check_light_levels("ALCLC0FFEE02")
    assert dark["light_ok"] is False and dark["rx_power_dbm"] == -25.8
    # The simulator keeps no state: the re-check says the connector was cleaned.
    cleaned = await NetworkSimulator(SimulatorConfig()).check_light_levels(
        "ALCLC0FFEE02", cleaned=True
    )
    assert cleaned["light_ok"] is True and cleaned["rx_power_dbm"] >= -22.0
    again = await NetworkSimulator(SimulatorConfig()).check_light_levels(
        "ALCLC0FFEE02", cleaned=True
    )
    assert again == cleaned


async def test_a_damaged_fiber_stays_dark_whatever_is_cleaned() -> None:
    assert light_cause("ALCLC0FFEE0E") == DAMAGED_FIBER
    sim = NetworkSimulator(SimulatorConfig())
    for cleaned in (False, True, True):
        reading = await sim.check_light_levels("ALCLC0FFEE0E", cleaned=cleaned)
        assert reading["light_ok"] is False and reading["cause"] == DAMAGED_FIBER


async def test_dark_serials_have_either_cause_and_cleaning_fixes_exactly_the_dirty_ones() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    causes = []
    for i in range(400):
        fsan = f"ALCL{i:08X}"
        found, cleaned = (
            await sim.check_light_levels(fsan),
            await sim.check_light_levels(fsan, cleaned=True),
        )
        causes.append(found.get("cause"))
        if found["light_ok"]:
            assert "cause" not in found and cleaned == found  # cleaning a clean one changes nothing
        else:
            assert cleaned["light_ok"] is (found["cause"] == DIRTY_CONNECTOR)
    assert causes.count(DIRTY_CONNECTOR) >= 5 and causes.count(DAMAGED_FIBER) >= 5


async def test_the_demo_repairs_fault_as_documented() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    statuses = {
        o: (await sim.run_line_test(o))["line_status"]
        for o in ("ORD-1002", "ORD-1007", "ORD-1008", "ORD-1009", "ORD-2001", "ORD-2003")
    }
    assert statuses == {
        "ORD-1002": "ok",
        "ORD-1007": "fault",
        "ORD-1008": "ok",
        "ORD-1009": "fault",
        "ORD-2001": "ok",
        "ORD-2003": "fault",
    }
    fault = await sim.run_line_test("ORD-1007")
    assert fault["fault_location"] and fault["loss_db"] > 25


async def test_injected_failures_fail_the_first_calls_then_succeed() -> None:
    sim = NetworkSimulator(SimulatorConfig(failures={"run_speed_test": 3}))
    for _ in range(3):
        with pytest.raises(TransientToolError):
            await sim.run_speed_test("ALCL90ABCDEF", "1G")
    assert (await sim.run_speed_test("ALCL90ABCDEF", "1G"))["tier_met"] is True
    assert await sim.check_light_levels("ALCL90ABCDEF")  # other operations are untouched
    assert sim.calls("run_speed_test") == 4


async def _failure_pattern(seed: int) -> list[bool]:
    sim = NetworkSimulator(SimulatorConfig(failure_rate=0.3, seed=seed))
    pattern = []
    for i in range(200):
        try:
            await sim.check_light_levels(f"ALCL{i:08X}")
        except TransientToolError:
            pattern.append(True)
        else:
            pattern.append(False)
    return pattern


async def test_a_failure_rate_fails_the_same_calls_for_the_same_seed() -> None:
    first = await _failure_pattern(seed=7)
    assert first == await _failure_pattern(seed=7)
    assert first != await _failure_pattern(seed=8)
    assert 30 <= sum(first) <= 90  # about 30 % of 200


async def test_latency_delays_every_call() -> None:
    sim = NetworkSimulator(SimulatorConfig(latency_ms=30))
    started = time.perf_counter()
    await sim.run_line_test("ORD-1")
    assert time.perf_counter() - started >= 0.025


def test_failures_parse_from_the_environment_format() -> None:
    parse = SimulatorConfig.parse_failures
    assert parse("run_speed_test:3, check_light_levels:1") == {
        "run_speed_test": 3,
        "check_light_levels": 1,
    }
    assert parse("") == {}
    with pytest.raises(ConfigError, match="run_speed_test"):
        parse("run_speed_test")
    with pytest.raises(ConfigError):
        parse("run_speed_test:many")


def test_a_nonsense_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="failure_rate"):
        SimulatorConfig(failure_rate=1.5)
    with pytest.raises(ConfigError, match="latency_ms"):
        SimulatorConfig(latency_ms=-1)
