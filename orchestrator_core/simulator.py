"""A deterministic stand-in for the provisioning, test and dispatch systems.

Every reading is derived from a SHA-256 hash of the operation's inputs, so the
same input always gives the same result, in any process, on any machine. The
only state is a call counter per operation, used to inject failures:

- ``failures={"run_speed_test": 3}`` makes the first three calls of that
  operation raise ``TransientToolError``; later calls succeed;
- ``failure_rate=0.1`` makes a deterministic tenth of calls fail transiently
  (which ones depends on the seed, the operation, its inputs and the call number,
  so a retry can succeed);
- ``latency_ms`` delays every call, to exercise timeouts and benchmarks.

Operation names are the names of the tools that call them, so a failure key is
always a tool name. Values the systems refuse (an unknown model or tier, a bad
Wi-Fi password) raise ``ArgumentRefused`` naming the argument, with a message
for the technician.

Readings:

- ``check_light_levels``: rx from -8 to -27 dBm, ``light_ok`` when rx >= -25 dBm.
  A serial that reads below -25 dBm has one cause, fixed by its serial (see
  ``light_cause``): a dirty connector, which reads a good level once the check
  is made with ``cleaned=True``, or a damaged fiber, which never does. The
  simulator keeps no state: the caller says whether the connector was cleaned;
- ``run_speed_test``: download and upload at 100-112 % of the tier's nominal speed;
- ``run_line_test``: a fault for about half of all order ids, chosen by hash,
  unless the caller says new equipment went in (then the line tests OK).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator_core.errors import ArgumentRefused, ConfigError, TransientToolError

#: The ONT models the provisioning system knows.
MODELS: tuple[str, ...] = ("G-010G-P", "G-240W-F", "716GE", "XS-010X-Q")
#: Ethernet ports every simulated ONT accepts (the same for all models, for simplicity).
ETHERNET_PORTS = range(1, 5)
#: Nominal download/upload speed of each service tier, in Mbit/s.
TIERS: dict[str, int] = {"300M": 300, "500M": 500, "1G": 1000}
#: Received optical power at or above this is good enough to bring a customer online.
LIGHT_THRESHOLD_DBM = -25.0

LightCause = Literal["dirty_connector", "damaged_fiber"]
DIRTY_CONNECTOR: LightCause = "dirty_connector"
DAMAGED_FIBER: LightCause = "damaged_fiber"

_FAULT_LOCATIONS = ("drop cable", "splitter port", "fiber distribution hub", "ONT fiber jumper")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator misbehaves: latency, injected failures and a failure rate."""

    latency_ms: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    failure_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ConfigError(f"simulator latency_ms must be >= 0, got {self.latency_ms}")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ConfigError(
                f"simulator failure_rate must be within 0..1, got {self.failure_rate}"
            )
        for op, count in self.failures.items():
            if count < 0:
                raise ConfigError(f"simulator failures[{op!r}] must be >= 0, got {count}")

    @staticmethod
    def parse_failures(spec: str) -> dict[str, int]:
        """Parse ``"run_speed_test:3,check_light_levels:1"`` into ``{op: count}``."""
        failures: dict[str, int] = {}
        for item in spec.split(","):
            item = item.strip()
            if not item:
                continue
            op, sep, count = item.partition(":")
            op = op.strip()
            try:
                number = int(count) if sep else -1
            except ValueError:
                number = -1
            if not op or number < 0:
                raise ConfigError(
                    f"bad simulator failure {item!r}: expected operation:count, "
                    "like run_speed_test:3"
                )
            failures[op] = number
        return failures


def _digest(*parts: object) -> bytes:
    # A unit separator keeps ("ab", "c") and ("a", "bc") apart.
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).digest()


def unit(*parts: object) -> float:
    """A number in [0, 1) fixed by the parts: the simulator's only source of variety."""
    return int.from_bytes(_digest(*parts)[:8], "big") / 2**64


def rx_power_dbm(fsan: str) -> float:
    """The optical power an ONT receives, fixed by its serial: -8 to -27 dBm."""
    return round(-8.0 - 19.0 * unit("rx", fsan), 1)


def light_cause(fsan: str) -> LightCause | None:
    """Why a serial reads too little light, fixed by its serial; None when its light is good.

    About half of the dark serials have a dirty connector, the rest a damaged fiber.
    """
    if rx_power_dbm(fsan) >= LIGHT_THRESHOLD_DBM:
        return None
    return DIRTY_CONNECTOR if unit("cause", fsan) < 0.5 else DAMAGED_FIBER


def cleaned_rx_power_dbm(fsan: str) -> float:
    """What a dark serial with a dirty connector reads once cleaned: -14 to -22 dBm."""
    return round(-14.0 - 8.0 * unit("cleaned", fsan), 1)


class NetworkSimulator:
    """Answers tools as the network would, deterministically; see the module docstring."""

    MODELS = MODELS

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._calls: Counter[str] = Counter()

    def calls(self, op: str) -> int:
        """How many times ``op`` has been called, failed calls included."""
        return self._calls[op]

    async def _begin(self, op: str, *inputs: object) -> None:
        """Count the call, wait the configured latency, then fail it if so configured."""
        self._calls[op] += 1
        number = self._calls[op]
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if number <= self.config.failures.get(op, 0):
            raise TransientToolError("The network system did not respond (injected failure).")
        rate = self.config.failure_rate
        if rate > 0 and unit(self.config.seed, "fail", op, *inputs, number) < rate:
            raise TransientToolError("The network system did not respond.")

    @staticmethod
    def _check_model(model: str, argument: str) -> None:
        if model not in MODELS:
            raise ArgumentRefused(
                f"{model} is not a known ONT model (known: {', '.join(MODELS)}).",
                (argument,),
                choices=MODELS,
            )

    async def activate_ont(
        self, order_id: str, fsan: str, model: str, ethernet_port: int
    ) -> dict[str, Any]:
        """Provision an ONT; the same serial on the same order always gets the same ont_id."""
        await self._begin("activate_ont", order_id, fsan, model, ethernet_port)
        self._check_model(model, "model")
        if ethernet_port not in ETHERNET_PORTS:
            raise ArgumentRefused(
                f"The {model} has Ethernet ports {ETHERNET_PORTS.start} to "
                f"{ETHERNET_PORTS.stop - 1}; port {ethernet_port} does not exist.",
                ("ethernet_port",),
                choices=tuple(str(port) for port in ETHERNET_PORTS),
            )
        return {
            "ont_id": "ONT-" + _digest("ont", fsan, order_id).hex()[:8].upper(),
            "activation_status": "active",
        }

    async def check_light_levels(self, fsan: str, cleaned: bool = False) -> dict[str, Any]:
        """Optical power at the ONT: rx from -8 to -27 dBm, tx from 0.5 to 5 dBm.

        ``cleaned`` says the fiber connector was cleaned and re-seated: a dirty
        connector then reads a good level; a damaged fiber still reads dark. A
        dark reading carries its ``cause`` (``dirty_connector``, ``damaged_fiber``).
        """
        await self._begin("check_light_levels", fsan)
        cause = light_cause(fsan)
        rx = rx_power_dbm(fsan)
        if cause == DIRTY_CONNECTOR and cleaned:
            cause, rx = None, cleaned_rx_power_dbm(fsan)
        tx = round(0.5 + 4.5 * unit("tx", fsan), 1)
        reading: dict[str, Any] = {
            "rx_power_dbm": rx,
            "tx_power_dbm": tx,
            "light_ok": rx >= LIGHT_THRESHOLD_DBM,
        }
        if cause is not None:
            reading["cause"] = cause
        return reading

    async def configure_wifi(self, fsan: str, ssid: str, wifi_password: str) -> dict[str, Any]:
        """Set the ONT's Wi-Fi; the device refuses names and passwords WPA2 does not allow."""
        await self._begin("configure_wifi", fsan, ssid)  # never the password, even hashed
        if not 1 <= len(ssid.encode()) <= 32:
            raise ArgumentRefused(
                "The device refused the Wi-Fi name: it must be 1 to 32 bytes long "
                "(accented letters and symbols count as 2 to 4).",
                ("ssid",),
            )
        if not 8 <= len(wifi_password) <= 63 or not wifi_password.isascii():
            raise ArgumentRefused(
                "The device refused the Wi-Fi password: it must be 8 to 63 characters long, "
                "letters, digits and plain symbols only.",
                ("wifi_password",),
            )
        return {"wifi_configured": True, "ssid": ssid}

    async def run_speed_test(self, fsan: str, service_tier: str) -> dict[str, Any]:
        """Measure throughput; a provisioned line always meets its tier."""
        await self._begin("run_speed_test", fsan, service_tier)
        nominal = TIERS.get(service_tier)
        if nominal is None:
            raise ArgumentRefused(
                unknown_tier_text(service_tier), ("service_tier",), choices=tuple(TIERS)
            )
        down = round(nominal * (1.0 + 0.12 * unit("down", fsan, service_tier)), 1)
        up = round(nominal * (1.0 + 0.12 * unit("up", fsan, service_tier)), 1)
        return {"download_mbps": down, "upload_mbps": up, "tier_met": True}

    async def run_line_test(self, order_id: str, repaired: bool = False) -> dict[str, Any]:
        """Test the customer's line: about half of all orders show a fault until ``repaired``."""
        await self._begin("run_line_test", order_id, repaired)
        if not repaired and unit("line", order_id) < 0.5:
            location = _FAULT_LOCATIONS[int(unit("where", order_id) * len(_FAULT_LOCATIONS))]
            loss = round(28.0 + 10.0 * unit("loss", order_id), 1)
            return {"line_status": "fault", "loss_db": loss, "fault_location": location}
        loss = round(14.0 + 8.0 * unit("loss", order_id), 1)
        return {"line_status": "ok", "loss_db": loss, "fault_location": None}

    async def replace_equipment(
        self, order_id: str, new_serial: str, new_model: str | None, old_serial: str | None
    ) -> dict[str, Any]:
        """Swap the ONT registered on an order for a new one.

        ``new_model`` is checked when given; a caller that knows no model (a plan over
        HTTP has only the serial) leaves it to the provisioning system.
        """
        await self._begin("replace_equipment", order_id, new_serial, old_serial)
        if new_model is not None:
            self._check_model(new_model, "new_model")
        return {"ont_id": "ONT-" + _digest("ont", new_serial, order_id).hex()[:8].upper()}

    async def escalate(self, cuid: str, order_id: str | None, kind: str) -> dict[str, Any]:
        """Notify the dispatch desk that a human is needed."""
        await self._begin("escalate", cuid, order_id, kind)
        return {"notified": True}


class SerialInUse(ArgumentRefused):
    """A serial is already active on another order: the provisioning system holds it there."""


class Activations:
    """Which order each serial is active on, as a provisioning system remembers it.

    ``NetworkSimulator`` keeps no state (in process, the work-order database knows
    where each ONT is installed). Served over HTTP, with no database behind it,
    the simulator needs this memory to refuse a serial already in use elsewhere and
    to know that an order got new equipment (its line then tests OK).
    """

    def __init__(self) -> None:
        self._orders: dict[str, str] = {}

    def claim(self, serial: str, order_id: str, argument: str) -> None:
        """Make ``serial`` active on ``order_id``; refuse one active on another order."""
        holder = self._orders.get(serial.casefold())
        if holder is not None and holder.casefold() != order_id.casefold():
            raise SerialInUse(f"Serial {serial} is already in use on another order.", (argument,))
        self._orders[serial.casefold()] = order_id

    def release(self, serial: str) -> None:
        """Forget ``serial`` (an ONT taken out); unknown serials are fine."""
        self._orders.pop(serial.casefold(), None)

    def has_equipment(self, order_id: str) -> bool:
        """Whether some serial was activated on ``order_id`` here."""
        return any(order.casefold() == order_id.casefold() for order in self._orders.values())

    def clear(self) -> None:
        """Forget every activation."""
        self._orders.clear()


def unknown_tier_text(service_tier: str) -> str:
    """Says a service tier is unknown, whether it came from the order or the technician."""
    known = ", ".join(TIERS)
    if not service_tier.strip():
        return f"No service tier was given; the speed test needs one of {known}."
    return f"The service tier {service_tier} is not one the speed test knows (known: {known})."


__all__ = [
    "Activations",
    "DAMAGED_FIBER",
    "DIRTY_CONNECTOR",
    "ETHERNET_PORTS",
    "LIGHT_THRESHOLD_DBM",
    "LightCause",
    "cleaned_rx_power_dbm",
    "light_cause",
    "rx_power_dbm",
    "MODELS",
    "NetworkSimulator",
    "SerialInUse",
    "SimulatorConfig",
    "TIERS",
    "unit",
    "unknown_tier_text",
]
