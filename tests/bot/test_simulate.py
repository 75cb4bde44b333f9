"""``techassist simulate``: the real command on a free port, called with the real httpx client.

One simulator with an admin token serves the module; each test starts from
``/admin/reset`` and sets the faults it needs through ``/admin/faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.sim_faults import FaultSpecError, parse_faults
from bot.simulate import Answer, AnswerCache
from orchestrator_core.simulator import (
    DAMAGED_FIBER,
    DIRTY_CONNECTOR,
    MODELS,
    TIERS,
    NetworkSimulator,
    light_cause,
)
from orchestrator_core.tools import CLEAN_CONNECTOR, NOT_ONLINE
from tests.bot.live import environment
from tests.bridges.server import Server, running

ROOT = Path(__file__).resolve().parents[2]
SIMULATE = ("simulate", "--host", "127.0.0.1", "--port", "0")
ANNOUNCE = "TechAssist simulator listening on "
TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SERIAL = "ALCL1234ABCD"
#: A client timeout far shorter than an injected hang (30 s), far longer than an answer.
SHORT = 1.0


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("simulator")
    with running(
        data_dir,
        SIMULATE,
        ANNOUNCE,
        TECHASSIST_SIM_ADMIN_TOKEN=TOKEN,
        TECHASSIST_SIM_SEED="7",
    ) as server:
        yield server


@pytest.fixture
def http(simulator: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.http, timeout=10.0, trust_env=False) as client:
        client.post("/admin/reset", headers=ADMIN).raise_for_status()
        yield client


def faults(http: httpx.Client, table: dict[str, Any]) -> None:
    http.put("/admin/faults", json=table, headers=ADMIN).raise_for_status()


def stats(http: httpx.Client) -> dict[str, Any]:
    answer = http.get("/admin/stats", headers=ADMIN)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def serial_with(cause: str | None) -> str:
    """The first demo-shaped serial whose light has ``cause`` (None: good light)."""
    for number in range(1000):
        serial = f"ALCL{number:08X}"
        if light_cause(serial) == cause:
            return serial
    raise AssertionError(f"no serial with {cause}")


def in_process(call: Any) -> dict[str, Any]:
    result: dict[str, Any] = asyncio.run(call)
    return result


# ---------------------------------------------------------------------- answers


def test_the_endpoints_answer_as_the_simulator_does_in_process(http: httpx.Client) -> None:
    sim = NetworkSimulator()
    activated = http.post(
        "/onts/activate",
        json={"order_id": "ORD-1", "fsan": SERIAL, "model": MODELS[1], "ethernet_port": 2},
    )
    assert activated.status_code == 200
    assert activated.json() == in_process(sim.activate_ont("ORD-1", SERIAL, MODELS[1], 2))

    good = serial_with(None)
    assert http.get(f"/onts/{good}/light-levels").json() == in_process(sim.check_light_levels(good))
    wifi = http.put(f"/onts/{SERIAL}/wifi", json={"ssid": "Home", "wifi_password": "s3cret-pass"})
    assert wifi.json() == in_process(sim.configure_wifi(SERIAL, "Home", "s3cret-pass"))
    for tier in TIERS:
        speed = http.post(f"/onts/{SERIAL}/speed-test", json={"service_tier": tier})
        assert speed.json() == in_process(sim.run_speed_test(SERIAL, tier))
    for order in ("ORD-2", "ORD-3", "ORD-4", "ORD-5"):
        for repaired in (False, True):
            line = http.post(f"/orders/{order}/line-test", params={"repaired": repaired})
            assert line.json() == in_process(sim.run_line_test(order, repaired))
    replaced = http.post(
        "/orders/ORD-6/equipment", json={"new_serial": "ALCL0000FFFF", "old_serial": SERIAL}
    )
    expected = in_process(sim.replace_equipment("ORD-6", "ALCL0000FFFF", None, SERIAL))
    assert replaced.json() == {
        **expected,
        "new_serial": "ALCL0000FFFF",
        "new_model": None,
        "replaced": True,
    }
    escalated = http.post("/escalations", json={"cuid": "AB1234", "order_id": "ORD-6"})
    assert escalated.json() == {"notified": True}
    online = http.post("/orders/ORD-6/customer-online", json={"customer_online": True})
    assert online.json() == {"customer_online": True}


def test_a_line_tests_ok_once_new_equipment_went_in_on_its_order(http: httpx.Client) -> None:
    sim = NetworkSimulator()
    faulty = next(
        order
        for order in (f"ORD-{n}" for n in range(100))
        if in_process(sim.run_line_test(order))["line_status"] == "fault"
    )
    assert http.post(f"/orders/{faulty}/line-test").json()["line_status"] == "fault"
    http.post(f"/orders/{faulty}/equipment", json={"new_serial": SERIAL}).raise_for_status()
    assert http.post(f"/orders/{faulty}/line-test").json()["line_status"] == "ok"


def test_a_dark_line_is_a_fault_on_site_with_what_to_do(http: httpx.Client) -> None:
    dirty, damaged = serial_with(DIRTY_CONNECTOR), serial_with(DAMAGED_FIBER)
    fixable = http.get(f"/onts/{dirty}/light-levels")
    assert fixable.status_code == 424
    body = fixable.json()
    assert body["kind"] == "field_fault" and "too low" in body["message"]
    assert body["remedy"] == CLEAN_CONNECTOR and body["retry_args"] == {"cleaned": True}
    assert body["reading"]["cause"] == DIRTY_CONNECTOR
    cleaned = http.get(f"/onts/{dirty}/light-levels", params={"cleaned": "true"})
    assert cleaned.status_code == 200 and cleaned.json()["light_ok"] is True
    crew = http.get(f"/onts/{damaged}/light-levels", params={"cleaned": "true"})
    assert crew.status_code == 424
    assert crew.json()["kind"] == "failed" and "fiber crew" in crew.json()["message"]


def test_refused_values_answer_4xx_with_a_message_naming_them(http: httpx.Client) -> None:
    activate = {"order_id": "ORD-1", "fsan": SERIAL, "model": MODELS[0], "ethernet_port": 1}
    assert http.post("/onts/activate", json=activate).status_code == 200
    taken = http.post("/onts/activate", json={**activate, "order_id": "ORD-2"})
    assert taken.status_code == 409
    assert taken.json()["message"] == f"Serial {SERIAL} is already in use on another order."
    assert taken.json()["kind"] == "refused" and taken.json()["arguments"] == ["fsan"]

    model = http.post("/onts/activate", json={**activate, "model": "X-1"})
    assert model.status_code == 422
    assert model.json()["arguments"] == ["model"] and model.json()["choices"] == list(MODELS)
    bad = http.post("/onts/activate", json={**activate, "fsan": "nope", "ethernet_port": "two"})
    assert bad.status_code == 422 and bad.json()["arguments"] == ["ethernet_port", "fsan"]
    assert {error["path"] for error in bad.json()["errors"]} == {"/fsan", "/ethernet_port"}
    assert "doesn't look like an ONT serial" in bad.json()["message"]

    short = http.put(f"/onts/{SERIAL}/wifi", json={"ssid": "Home", "wifi_password": "short"})
    assert short.status_code == 422 and short.json()["arguments"] == ["wifi_password"]
    assert "short" not in short.text  # a sensitive value is never echoed
    offline = http.post("/orders/ORD-1/customer-online", json={"customer_online": False})
    assert offline.status_code == 422 and offline.json()["message"] == NOT_ONLINE


def test_the_openapi_document_describes_every_operation(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    paths = document["paths"]
    operations = [operation for path in paths.values() for operation in path.values()]
    assert len(operations) == 8 + 3  # the simulator's and the admin endpoint's
    assert all(operation["summary"] for operation in operations)
    assert "409" in paths["/onts/activate"]["post"]["responses"]
    assert "424" in paths["/onts/{fsan}/light-levels"]["get"]["responses"]
    assert {"/onts/{fsan}/wifi", "/orders/{order_id}/equipment", "/escalations"} <= set(paths)
    assert http.get("/docs").status_code == 200


# ---------------------------------------------------------------------- admin


def test_the_admin_endpoint_needs_its_token(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = http.get("/admin/stats", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in refused.text
    assert http.put("/admin/faults", json={}).status_code == 401
    assert http.get("/admin/stats", headers=ADMIN).status_code == 200


def test_a_bad_fault_table_is_refused_with_its_json_path(http: httpx.Client) -> None:
    answer = http.put("/admin/faults", json={"activate_ont": {"error_rate": 2}}, headers=ADMIN)
    assert answer.status_code == 422
    assert "/activate_ont/error_rate" in answer.json()["message"]


# ---------------------------------------------------------------------- faults


def test_injected_5xx_follow_the_seed(http: httpx.Client) -> None:
    table = {"run_speed_test": {"error_rate": 0.5, "error_status": 502}}

    def statuses() -> list[int]:
        faults(http, table)  # a table put in force starts its draws afresh
        body = {"service_tier": "1G"}
        return [http.post(f"/onts/{SERIAL}/speed-test", json=body).status_code for _ in range(20)]

    first = statuses()
    assert set(first) == {200, 502}
    assert statuses() == first


def test_injected_latency_delays_the_answer(http: httpx.Client) -> None:
    faults(http, {"escalate": {"latency_ms": 300}})
    answer = http.post("/escalations", json={"cuid": "AB1234"})
    assert answer.status_code == 200
    assert answer.elapsed >= timedelta(milliseconds=300)


def test_an_injected_timeout_leaves_the_client_without_answer(http: httpx.Client) -> None:
    faults(http, {"run_line_test": {"timeout_rate": 1, "times": 1}})
    with pytest.raises(httpx.ReadTimeout):
        http.post("/orders/ORD-1/line-test", timeout=SHORT)
    assert http.post("/orders/ORD-1/line-test").status_code == 200
    assert stats(http)["effects"] == {"run_line_test": 1}


def test_a_request_nobody_gives_up_on_times_out_with_a_504(http: httpx.Client) -> None:
    faults(http, {"run_line_test": {"timeout_rate": 1, "hang_seconds": 0.2}})
    answer = http.post("/orders/ORD-1/line-test")
    assert answer.status_code == 504 and answer.json()["kind"] == "transient"


def test_an_injected_reset_breaks_the_connection(http: httpx.Client) -> None:
    faults(http, {"run_line_test": {"reset_rate": 1, "times": 1}})
    with pytest.raises(httpx.TransportError):
        http.post("/orders/ORD-1/line-test")
    assert http.post("/orders/ORD-1/line-test").status_code == 200


def test_a_flapping_endpoint_alternates_up_and_down(http: httpx.Client) -> None:
    faults(http, {"check_light_levels": {"flap_calls": 2}})
    good = serial_with(None)
    seen = [http.get(f"/onts/{good}/light-levels").status_code for _ in range(6)]
    assert seen == [200, 200, 503, 503, 200, 200]

    faults(http, {"check_light_levels": {"flap_seconds": 0.2}})
    seen = []
    for _ in range(500):  # bounded; a few periods at the least
        seen.append(http.get(f"/onts/{good}/light-levels").status_code)
        if 503 in seen and seen[-1] == 200:
            break
    assert 503 in seen and seen[-1] == 200  # down, then up again


# ---------------------------------------------------------------------- idempotency


def test_a_repeated_idempotency_key_gets_the_first_answer_and_acts_once(
    http: httpx.Client,
) -> None:
    faults(http, {"activate_ont": {"timeout_rate": 1, "after_effect": True, "times": 1}})
    activate = {"order_id": "ORD-1", "fsan": SERIAL, "model": MODELS[0], "ethernet_port": 1}
    key = {"Idempotency-Key": "order ORD-1 step activate"}
    with pytest.raises(httpx.ReadTimeout):
        http.post("/onts/activate", json=activate, headers=key, timeout=SHORT)
    assert stats(http)["effects"] == {"activate_ont": 1}  # it acted, the answer was lost

    again = http.post("/onts/activate", json=activate, headers=key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    first = in_process(NetworkSimulator().activate_ont("ORD-1", SERIAL, MODELS[0], 1))
    assert again.json() == first
    counts = stats(http)
    assert counts["effects"] == {"activate_ont": 1} and counts["replays"] == {"activate_ont": 1}

    other = http.post("/onts/activate", json={**activate, "ethernet_port": 2}, headers=key)
    assert other.status_code == 422 and "different request" in other.json()["message"]


def test_two_requests_at_once_with_one_key_act_once(simulator: Server, http: httpx.Client) -> None:
    faults(http, {"activate_ont": {"latency_ms": 200}})  # both are in flight together
    activate = {"order_id": "ORD-1", "fsan": SERIAL, "model": MODELS[0], "ethernet_port": 1}

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=simulator.http, timeout=10.0, trust_env=False) as c:
            key = {"Idempotency-Key": "same"}
            calls = [c.post("/onts/activate", json=activate, headers=key) for _ in range(2)]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(both())
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert sorted("idempotent-replayed" in answer.headers for answer in answers) == [False, True]
    assert stats(http)["effects"] == {"activate_ont": 1}


def test_the_kept_answers_are_bounded() -> None:
    cache = AnswerCache(capacity=2)
    for key in ("a", "b", "c"):
        cache.put(("escalate", key), Answer(200, [], key.encode()))
    assert len(cache) == 2 and cache.get(("escalate", "a")) is None
    assert cache.get(("escalate", "c")) == Answer(200, [], b"c")


def test_a_5xx_after_the_effect_is_replayed_as_the_success_it_was(http: httpx.Client) -> None:
    faults(http, {"configure_wifi": {"error_rate": 1, "after_effect": True, "times": 1}})
    body = {"ssid": "Home", "wifi_password": "s3cret-pass"}
    key = {"Idempotency-Key": "k-1"}
    assert http.put(f"/onts/{SERIAL}/wifi", json=body, headers=key).status_code == 503
    replayed = http.put(f"/onts/{SERIAL}/wifi", json=body, headers=key)
    assert replayed.status_code == 200 and replayed.json()["wifi_configured"] is True
    assert stats(http)["effects"] == {"configure_wifi": 1}
    http.put(f"/onts/{SERIAL}/wifi", json=body).raise_for_status()  # no key: it acts again
    assert stats(http)["effects"] == {"configure_wifi": 2}


def test_a_5xx_before_the_effect_leaves_the_key_free(http: httpx.Client) -> None:
    faults(http, {"escalate": {"error_rate": 1, "times": 1}})
    key = {"Idempotency-Key": "k-2"}
    assert http.post("/escalations", json={"cuid": "AB1234"}, headers=key).status_code == 503
    second = http.post("/escalations", json={"cuid": "AB1234"}, headers=key)
    assert second.status_code == 200 and "idempotent-replayed" not in second.headers
    assert stats(http)["effects"] == {"escalate": 1}


# ---------------------------------------------------------------------- starting


def test_it_listens_on_loopback_by_default_with_faults_from_the_settings(
    tmp_path: Path,
) -> None:
    table = '{"escalate": {"error_rate": 1, "error_status": 500}}'
    with running(
        tmp_path,
        ("simulate", "--port", "0"),
        ANNOUNCE,
        TECHASSIST_SIM_FAULTS=table,
        TECHASSIST_SIM_FAILURES="run_speed_test:1",  # the in-process simulator's own
    ) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.http, timeout=10.0, trust_env=False) as client:
            assert client.post("/escalations", json={"cuid": "AB1234"}).status_code == 500
            speed = [
                client.post(f"/onts/{SERIAL}/speed-test", json={"service_tier": "1G"})
                for _ in range(2)
            ]
            assert [answer.status_code for answer in speed] == [503, 200]
            assert speed[0].json()["kind"] == "transient"
            off = client.get("/admin/stats", headers=ADMIN)
            assert off.status_code == 404 and "off" in off.json()["message"]


def test_no_token_key_or_password_reaches_the_log(tmp_path: Path) -> None:
    secrets = {"token": "tok-7d1f0c", "key": "key-5e2b9a", "password": "pw-3c8d4e-long"}
    with (
        running(
            tmp_path,
            SIMULATE,
            ANNOUNCE,
            TECHASSIST_SIM_ADMIN_TOKEN=secrets["token"],
            TECHASSIST_LOG_LEVEL="DEBUG",
        ) as server,
        httpx.Client(base_url=server.http, timeout=10.0, trust_env=False) as client,
    ):
        admin = {"Authorization": f"Bearer {secrets['token']}"}
        table = {"configure_wifi": {"reset_rate": 1, "times": 1}}
        client.put("/admin/faults", json=table, headers=admin).raise_for_status()
        key = {"Idempotency-Key": secrets["key"]}
        for password in (secrets["password"], secrets["password"][:5]):
            body = {"ssid": "Home", "wifi_password": password}
            with contextlib.suppress(httpx.TransportError):
                client.put(f"/onts/{SERIAL}/wifi", json=body, headers=key)
        wrong = {"Authorization": f"Bearer {secrets['token']}x"}
        assert client.get("/admin/stats", headers=wrong).status_code == 401
    log = "".join(server.output)
    assert "injected reset on configure_wifi, before any effect" in log
    assert not [name for name, value in secrets.items() if value[:10] in log]


def test_a_bad_fault_setting_stops_the_start_with_its_json_path(tmp_path: Path) -> None:
    table = '{"activate_ont": {"timeout_rate": 0.7, "error_rate": 0.7}}'
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "simulate", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(tmp_path, TECHASSIST_SIM_FAULTS=table),
        cwd=ROOT,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: TECHASSIST_SIM_FAULTS is invalid: /activate_ont: " in done.stderr
    assert "must be 1 at most" in done.stderr


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('{"activate_onts": {}}', "/activate_onts: Input should be 'activate_ont'"),
        ('{"escalate": {"latency": 5}}', "/escalate/latency: Extra inputs are not permitted"),
        ('{"escalate": {"error_rate": -1}}', "/escalate/error_rate: Input should be greater"),
        ('{"escalate": {"flap_calls": 2, "flap_seconds": 1}}', "/escalate: Value error, give"),
        ('["escalate"]', "/: Input should be a valid dictionary"),
        ("{escalate", "not JSON: Expecting property name"),
    ],
)
def test_each_bad_fault_is_named_with_its_json_path(table: str, problem: str) -> None:
    with pytest.raises(FaultSpecError) as refused:
        parse_faults(table)
    assert str(refused.value).startswith(problem)


def test_a_port_in_use_names_the_simulator_s_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "simulate"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment(tmp_path, TECHASSIST_SIM_PORT=str(port)),
            cwd=ROOT,
        )
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "the port is from the environment" in done.stderr
    assert "TECHASSIST_SIM_PORT" in done.stderr
