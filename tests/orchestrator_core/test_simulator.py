"""The network simulator: deterministic readings and injected trouble."""

from __future__ import annotations

import time

import pytest

from orchestrator_core.errors import ConfigError, ToolFailed, TransientToolError
from orchestrator_core.simulator import MODELS, TIERS, NetworkSimulator, SimulatorConfig


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


async def test_an_unknown_tier_or_model_is_a_permanent_failure() -> None:
    sim = NetworkSimulator(SimulatorConfig())
    with pytest.raises(ToolFailed, match="service tier"):
        await sim.run_speed_test("ALCL90ABCDEF", "2G")
    with pytest.raises(ToolFailed, match="not a known ONT model"):
        await sim.activate_ont("ORD-1", "ALCL90ABCDEF", "HG8245", 1)
    assert "716GE" in MODELS


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
