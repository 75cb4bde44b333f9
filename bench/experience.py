"""Benchmark: how many messages a technician sends to finish an order.

Run ``python -m bench.experience``. Through the in-memory bridge, on the real
tools, work-order database and simulator, in a temporary data directory, it
works a full installation and a full repair from the CUID to ``end``:

- on the demo data;
- on the demo data with every order's service tier removed (the speed test
  then has to ask for it).

Each is worked twice: once sending every value the plan will need in one
message, and once answering one question at a time. It prints the turns (a
turn is one technician message) next to the bound the conversation must stay
within when the values come together: parameters + confirmations + 2, where
a tier that must be asked for counts as a parameter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.wiring import build
from bridges.memory import MemoryBridge
from orchestrator_core.importer import DEMO_DATA, import_data
from orchestrator_core.turns import Reply

#: One answer per value a plan may ask for, as a technician would give it.
ANSWERS = {
    "fsan": "ALCL90ABCDEF",
    "model": "G-240W-F",
    "ethernet_port": "2",
    "ssid": "Lovelace Home",
    "wifi_password": "kettle-on-tuesday",
    "service_tier": "1G",
    "customer_online": "yes",
    "diagnosis_code": "ONT_FAULT",
    "new_serial": "ALCL5E6F7A8B",
}


@dataclass(frozen=True)
class Case:
    name: str
    cuid: str
    order_id: str
    together: list[str]
    """The values the technician sends in one message, all at once."""
    no_tiers: bool = False


@dataclass(frozen=True)
class Run:
    turns: int
    parameters: int
    confirmations: int
    closed: bool

    @property
    def bound(self) -> int:
        return self.parameters + self.confirmations + 2


def demo(no_tiers: bool) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEMO_DATA.read_text())
    if no_tiers:
        for order in data["orders"]:
            order.pop("service_tier", None)
    return data


async def work(case: Case, together: bool, directory: Path) -> Run:
    """Work the case's order from the CUID to ``end``; count what the technician sent."""
    settings = Settings(_env_file=None, data_dir=directory, seed_demo=False)
    services = await build(settings)
    try:
        await import_data(services.workorders, demo(case.no_tiers))
        chat = MemoryBridge(services.orchestrator, case.cuid)
        await chat.start()
        turns, confirmations = 0, 0
        parameters: set[str] = set()

        async def say(text: str) -> list[Reply]:
            nonlocal turns
            turns += 1
            return await chat.say(text)

        replies = await say(case.cuid)
        sent_together = False
        while not chat.closed:
            asked = replies[-1]
            if asked.needs and asked.needs in ANSWERS:
                parameters.add(asked.needs)
                if together and not sent_together:
                    sent_together = True
                    parameters.update(case.together)
                    text = " ".join(f"{k}={json.dumps(ANSWERS[k])}" for k in case.together)
                else:
                    text = ANSWERS[asked.needs]
            elif asked.choices and asked.choices[:2] == ["yes", "no"]:
                confirmations += 1
                order_id = (asked.data or {}).get("order", {}).get("order_id")
                text = "yes" if order_id == case.order_id else "no"
            elif asked.choices and asked.choices[0].isdigit():
                confirmations += 1
                options = (asked.data or {}).get("orders", [])
                ids = [o["order_id"] for o in options]
                text = str(ids.index(case.order_id) + 1)
            elif asked.choices and "next" in asked.choices:
                text = "end"
            else:
                raise RuntimeError(f"{case.name}: unexpected question {asked.text!r}")
            replies = await say(text)
        order = await services.workorders.get_order(case.order_id)
        closed = order is not None and order.status == "completed"
        # The tier is asked only where the order lacks it.
        used = len(parameters & set(ANSWERS))
        return Run(turns, used, confirmations, closed)
    finally:
        await services.aclose()


CASES = [
    Case(
        "installation",
        "AB1234",
        "ORD-1003",
        ["fsan", "model", "ethernet_port", "ssid", "wifi_password", "customer_online"],
    ),
    Case("repair", "CD5678", "ORD-2003", ["diagnosis_code", "new_serial"]),
    Case(
        "installation, no tiers",
        "AB1234",
        "ORD-1003",
        [*["fsan", "model", "ethernet_port", "ssid", "wifi_password"], "service_tier"]
        + ["customer_online"],
        no_tiers=True,
    ),
    Case("repair, no tiers", "CD5678", "ORD-2003", ["diagnosis_code", "new_serial"], no_tiers=True),
]


async def main(cases: list[Case], say: Callable[[str], None]) -> bool:
    say(f"machine: {platform.machine()}, CPython {platform.python_version()}")
    say(f"platform: {platform.platform()}")
    say(f"{'case':<24} {'one message':>12} {'one by one':>11} {'bound':>6}  within")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for index, case in enumerate(cases):
            together = await work(case, True, Path(tmp) / f"{index}a")
            single = await work(case, False, Path(tmp) / f"{index}b")
            within = together.turns <= together.bound and together.closed and single.closed
            ok = ok and within
            say(
                f"{case.name:<24} {together.turns:>12} {single.turns:>11} {together.bound:>6}  "
                f"{'yes' if within else 'NO'}  ({together.parameters} parameters, "
                f"{together.confirmations} confirmations)"
            )
    return ok


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    raise SystemExit(0 if asyncio.run(main(CASES, print)) else 1)
