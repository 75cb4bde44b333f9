"""The tool registry and every built-in tool.

A tool is a typed async function ``async def name(ctx: ToolContext, ...) -> dict``
registered by name. It returns a flat dict of outputs, or raises with plain
words for a technician; what it raises says what can fix it:

- ``ArgumentRefused``: the values of the named arguments were refused; entering
  them again (or correcting the order's data they came from) can fix it;
- ``FieldFault``: something on site the technician can fix, then confirm;
- ``TransientToolError``: trying again may help;
- ``ToolFailed`` itself: nothing the technician enters or retries fixes it.

Argument names are a contract: plans map their inputs onto them. Arguments
that take a fixed set of values declare it (``choices``), so a conversation can
offer them. The inner agent validates the arguments (``args_model``), applies
timeouts and retries, and audits every try.

A tool is declared idempotent when calling it twice with the same arguments
leaves the world as calling it once did; only those are retried.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import json
import random
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from orchestrator_core.errors import ArgumentRefused, FieldFault, InventoryConflict, ToolFailed
from orchestrator_core.orders import InventoryItem, Order
from orchestrator_core.simulator import (
    DIRTY_CONNECTOR,
    ETHERNET_PORTS,
    LIGHT_THRESHOLD_DBM,
    MODELS,
    TIERS,
    NetworkSimulator,
    unknown_tier_text,
)
from orchestrator_core.workorders import WorkOrders

ToolFunc = Callable[..., Awaitable[dict[str, Any]]]

#: Escalation kinds that hand the whole order to a human: the order leaves the
#: technician's open list. Other kinds ("help") only ask for assistance.
ORDER_ESCALATION_KINDS = frozenset({"order", "tool_failure"})

_FSAN = re.compile(r"[A-Z]{4}[0-9A-F]{8}")


@dataclass(frozen=True)
class ToolContext:
    """What every tool may use: the work-order database and the network simulator."""

    db: WorkOrders
    sim: NetworkSimulator
    escalations_per_hour: int | None = None
    """Escalations one technician may record per hour; ``None``: no limit."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a tool's own retries wait: exponential backoff, capped, with random jitter.

    ``retries`` extra tries after a transient failure; the n-th waits
    ``backoff * 2**(n-1)`` seconds (at most ``max_backoff``), spread by up to
    ``jitter`` of itself either way so that many callers do not retry in step.
    """

    retries: int
    backoff: float
    max_backoff: float = 10.0
    jitter: float = 0.0

    def delay(self, try_no: int) -> float:
        """Seconds to wait after failed try ``try_no`` (1-based)."""
        base = min(self.backoff * 2.0 ** (try_no - 1), self.max_backoff)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


_CALL_KEY: ContextVar[str | None] = ContextVar("techassist_call_key", default=None)


def call_key(
    session_id: str,
    order_id: str | None,
    step_id: str,
    tool: str,
    args: Any,
    secret: bytes = b"",
) -> str:
    """The idempotency key of a call: the same for every try of the same inputs in a step.

    The attempt number is left out on purpose: a technician's own "retry" is the
    same request again, so a system that honours the key acts only once. The key
    is an HMAC under ``secret``: the inputs include sensitive ones, and a plain hash
    of a short one (a PIN) could be found again from the key by trying every value.
    """
    text = json.dumps(
        [session_id, order_id, step_id, tool, args], sort_keys=True, default=str
    ).encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


def current_call_key() -> str | None:
    """The idempotency key of the call running now (set by the inner agent for keyed tools)."""
    return _CALL_KEY.get()


def set_call_key(key: str | None) -> Token[str | None]:
    """Set the running call's key; returns the token to reset it with ``reset_call_key``."""
    return _CALL_KEY.set(key)


def reset_call_key(token: Token[str | None]) -> None:
    """Undo ``set_call_key``."""
    _CALL_KEY.reset(token)


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool: its function, retry safety and argument names (``ctx`` excluded)."""

    name: str
    func: ToolFunc
    idempotent: bool
    description: str
    required: frozenset[str]
    accepted: frozenset[str]
    action: str = ""
    """How a failure message starts, e.g. "Activating the ONT" (… failed: reason)."""
    read_only: bool = False
    """The tool changes nothing, so running it again on a replayed turn is harmless and
    the inner agent need not look for an earlier result in the audit."""
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """Arguments that take one of a fixed set of values, with those values
    (e.g. ``service_tier``: 300M, 500M, 1G), for asking a technician."""
    model: type[BaseModel] | None = None
    """The arguments' model when it is not derived from ``func``'s signature (a tool
    declared in a file); fields are named ``arg_<argument>`` with the argument as alias."""
    sensitive: frozenset[str] = frozenset()
    """Arguments the tool itself declares sensitive: masked in the audit and logs
    whatever the plan says."""
    retry: RetryPolicy | None = None
    """The tool's own retry policy; ``None``: the inner agent's default."""
    timeout: float | None = None
    """Seconds one try may take; ``None``: the inner agent's default."""
    keyed: bool = False
    """The tool sends an idempotency key (``current_call_key``); the inner agent
    makes it and keeps it in the audit."""

    @property
    def args_model(self) -> type[BaseModel]:
        """The pydantic model that validates and coerces this tool's arguments."""
        return self.model or args_model_for(self.func)


@functools.cache
def args_model_for(func: ToolFunc) -> type[BaseModel]:
    """Build, once per function, a model of its arguments from its signature.

    Fields get a private name and the argument's name as alias, so an argument
    called ``json`` or ``copy`` cannot clash with BaseModel's attributes;
    validation errors still name the argument. Unknown arguments are refused.
    """
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(func).parameters.values())[1:]:
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[f"arg_{param.name}"] = (
            hints.get(param.name, Any),
            Field(default, alias=param.name),
        )
    config = ConfigDict(extra="forbid", protected_namespaces=())
    model: type[BaseModel] = create_model(f"{func.__name__}_arguments", __config__=config, **fields)
    return model


class ToolRegistry:
    """Tools by name. ``register`` checks a tool's shape when it is added, not when it runs."""

    def __init__(self) -> None:
        self._specs: dict[str, ToolSpec] = {}

    def register(
        self,
        func: ToolFunc,
        *,
        name: str | None = None,
        idempotent: bool,
        description: str = "",
        action: str = "",
        read_only: bool = False,
        choices: Mapping[str, Sequence[str]] | None = None,
    ) -> ToolSpec:
        """Add ``func`` as a tool; raise TypeError/ValueError if it cannot be one."""
        name = name or func.__name__
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"tool {name!r} must be an async function")
        params = list(inspect.signature(func).parameters.values())
        if not params or params[0].name != "ctx":
            raise TypeError(f"tool {name!r} must take ctx as its first argument")
        for param in params[1:]:
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise TypeError(f"tool {name!r}: argument {param.name!r} must be a named argument")
        if name in self._specs:
            raise ValueError(f"a tool named {name!r} is already registered")
        args_model_for(func)  # An annotation pydantic cannot validate fails here, not mid-turn.
        accepted = frozenset(p.name for p in params[1:])
        fixed = {arg: tuple(values) for arg, values in (choices or {}).items()}
        for arg, values in fixed.items():
            if arg not in accepted:
                raise ValueError(f"tool {name!r} has no argument {arg!r} to give choices for")
            if not values:
                raise ValueError(f"tool {name!r}: the choices for {arg!r} are empty")
        doc = inspect.getdoc(func) or ""
        spec = ToolSpec(
            name=name,
            func=func,
            idempotent=idempotent,
            description=description or doc.partition("\n")[0],
            required=frozenset(p.name for p in params[1:] if p.default is p.empty),
            accepted=accepted,
            action=action or f"Running {name}",
            read_only=read_only,
            choices=MappingProxyType(fixed),
        )
        self._specs[name] = spec
        return spec

    def add(self, spec: ToolSpec, *, replace: bool = False) -> ToolSpec:
        """Add a tool built elsewhere (one declared in a file).

        A taken name is a ValueError unless ``replace``: a tool declared over HTTP
        may take a built-in tool's place, so the same plans run against real systems.
        """
        if spec.name in self._specs and not replace:
            raise ValueError(f"a tool named {spec.name!r} is already registered")
        self._specs[spec.name] = spec
        return spec

    def tool(
        self,
        *,
        name: str | None = None,
        idempotent: bool,
        description: str = "",
        action: str = "",
        read_only: bool = False,
        choices: Mapping[str, Sequence[str]] | None = None,
    ) -> Callable[[ToolFunc], ToolFunc]:
        """Decorator form of ``register``; returns the function unchanged."""

        def decorate(func: ToolFunc) -> ToolFunc:
            self.register(
                func,
                name=name,
                idempotent=idempotent,
                description=description,
                action=action,
                read_only=read_only,
                choices=choices,
            )
            return func

        return decorate

    def get(self, name: str) -> ToolSpec | None:
        """The tool registered as ``name``, or None."""
        return self._specs.get(name)

    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._specs)

    def specs(self) -> Mapping[str, ToolSpec]:
        """A read-only view of the tools by name."""
        return MappingProxyType(self._specs)

    def copy(self) -> ToolRegistry:
        """A registry with the same tools, which can be extended independently."""
        other = ToolRegistry()
        other._specs = dict(self._specs)
        return other

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)


_BUILTINS = ToolRegistry()
builtin = _BUILTINS.tool


def default_registry() -> ToolRegistry:
    """A fresh registry holding every built-in tool."""
    return _BUILTINS.copy()


# ---------------------------------------------------------------------- helpers


async def _order(ctx: ToolContext, order_id: str) -> Order:
    order = await ctx.db.get_order(order_id)
    if order is None:
        raise ToolFailed(f"There is no order {order_id.strip()}.")
    return order


def _fsan(value: str, argument: str = "fsan") -> str:
    fsan = value.strip().upper()
    if not _FSAN.fullmatch(fsan):
        raise ArgumentRefused(
            f"{value.strip()!r} doesn't look like an ONT serial: 4 letters then 8 hex digits, "
            "like ALCL1234ABCD.",
            (argument,),
        )
    return fsan


def _model(value: str) -> str:
    for model in MODELS:
        if model.casefold() == value.strip().casefold():
            return model
    raise ArgumentRefused(
        f"{value.strip()} is not a known ONT model (known: {', '.join(MODELS)}).",
        ("model",),
        choices=MODELS,
    )


def _known_model(value: str) -> bool:
    return any(model.casefold() == value.strip().casefold() for model in MODELS)


def _unknown_model_text(item: InventoryItem) -> str:
    return (
        f"Serial {item.serial} is a {item.model} in inventory, a model the provisioning "
        f"system doesn't know (known: {', '.join(MODELS)}); use another ONT."
    )


def _serial_or_none(value: Any) -> str | None:
    """A serial recorded somewhere, upper-cased; None for a blank or a non-string."""
    return value.strip().upper() if isinstance(value, str) and value.strip() else None


def _order_dict(order: Order) -> dict[str, Any]:
    return order.model_dump(mode="json")


# ---------------------------------------------------------------------- technicians and orders


@builtin(idempotent=True, read_only=True, action="Looking up the technician")
async def find_technician(ctx: ToolContext, cuid: str) -> dict[str, Any]:
    """Find a technician by CUID."""
    tech = await ctx.db.get_technician(cuid)
    if tech is None:
        # Say nothing about who does exist: a CUID is not a secret, but the list is.
        raise ToolFailed(f"No technician has the CUID {cuid.strip()}.")
    return {"cuid": tech.cuid, "name": tech.name}


@builtin(idempotent=True, read_only=True, action="Looking up the chat account")
async def find_technician_by_account(
    ctx: ToolContext, slack_user_id: str = "", email: str = ""
) -> dict[str, Any]:
    """Find the technician a chat account belongs to: by Slack user id, else by email."""
    tech = await ctx.db.find_technician_by_slack(slack_user_id) if slack_user_id else None
    if tech is None and email:
        tech = await ctx.db.find_technician_by_email(email)
    if tech is None:
        raise ToolFailed("This chat account is not mapped to a technician.")
    return {"cuid": tech.cuid, "name": tech.name}


@builtin(idempotent=True, read_only=True, action="Fetching the orders")
async def get_orders(ctx: ToolContext, cuid: str) -> dict[str, Any]:
    """List a technician's open orders, most urgent first."""
    if await ctx.db.get_technician(cuid) is None:
        raise ToolFailed(f"No technician has the CUID {cuid.strip()}.")
    return {"orders": [_order_dict(o) for o in await ctx.db.open_orders(cuid)]}


@builtin(idempotent=True, read_only=True, action="Fetching the order details")
async def get_order_details(ctx: ToolContext, order_id: str) -> dict[str, Any]:
    """Show an order, with its type-specific details (trouble, current serial) at top level."""
    order = await _order(ctx, order_id)
    return {**order.details, "order": _order_dict(order)}


@builtin(idempotent=True, action="Starting the order")
async def start_order(ctx: ToolContext, order_id: str, cuid: str) -> dict[str, Any]:
    """Mark an order as in progress by its technician."""
    order = await _order(ctx, order_id)
    if (
        await ctx.db.get_technician(cuid) is None
        or order.cuid.casefold() != cuid.strip().casefold()
    ):
        raise ToolFailed(f"Order {order.order_id} is not assigned to you.")
    if order.status == "assigned":
        await ctx.db.set_order_status(order.order_id, "in_progress", "started")
    elif order.status != "in_progress":
        raise ToolFailed(f"Order {order.order_id} is already {order.status.replace('_', ' ')}.")
    return {"status": "in_progress"}


@builtin(idempotent=True, action="Releasing the order")
async def release_order(ctx: ToolContext, order_id: str, reason: str) -> dict[str, Any]:
    """Put an order back in the technician's queue, recording why."""
    order = await _order(ctx, order_id)
    if order.status not in ("assigned", "in_progress"):
        raise ToolFailed(f"Order {order.order_id} is already {order.status.replace('_', ' ')}.")
    if order.status == "in_progress":
        await ctx.db.set_order_status(order.order_id, "assigned", f"released: {reason}")
    return {"status": "assigned"}


@builtin(idempotent=True, action="Closing the order")
async def close_order(ctx: ToolContext, order_id: str, notes: str = "") -> dict[str, Any]:
    """Mark an order completed."""
    order = await _order(ctx, order_id)
    if order.status in ("cancelled", "escalated"):
        raise ToolFailed(f"Order {order.order_id} is {order.status} and cannot be completed.")
    if order.status != "completed":
        order = await ctx.db.set_order_status(order.order_id, "completed", notes or "completed")
    return {"status": "completed", "closed_at": _order_dict(order)["closed_at"]}


@builtin(idempotent=False, action="Escalating")
async def escalate(
    ctx: ToolContext,
    cuid: str,
    reason: str,
    order_id: str | None = None,
    kind: str = "tool_failure",
    session_key: str | None = None,
    step: str | None = None,
    step_no: int | None = None,
    step_of: int | None = None,
    words: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Hand a problem to a human; an order-kind escalation takes the order off the list.

    The rest is what the dispatcher sees: the conversation it came from, the step
    (id, k of n), the technician's words and the values so far (already masked).
    A technician who has recorded ``ctx.escalations_per_hour`` escalations in the last
    hour is refused, and told to call dispatch instead.
    """
    limit = ctx.escalations_per_hour
    if limit is not None and await ctx.db.count_escalations(cuid.strip(), within=3600) >= limit:
        raise ToolFailed(
            f"you have reached the limit of {limit} escalations an hour; "
            "please call your dispatcher directly"
        )
    order = await _order(ctx, order_id) if order_id else None
    await ctx.sim.escalate(cuid, order_id, kind)
    escalation_id = await ctx.db.add_escalation(
        cuid.strip(),
        order.order_id if order else None,
        kind,
        reason,
        session_key=session_key,
        step=step,
        step_no=step_no,
        step_of=step_of,
        words=words,
        params=params,
    )
    if order is not None and order.is_open and kind in ORDER_ESCALATION_KINDS:
        await ctx.db.set_order_status(order.order_id, "escalated", f"{escalation_id}: {reason}")
    return {"escalation_id": escalation_id}


# ---------------------------------------------------------------------- installation


@builtin(
    idempotent=True,
    action="Activating the ONT",
    choices={"model": MODELS, "ethernet_port": tuple(str(port) for port in ETHERNET_PORTS)},
)
async def activate_ont(
    ctx: ToolContext, order_id: str, fsan: str, model: str, ethernet_port: int
) -> dict[str, Any]:
    """Activate an ONT from inventory on an order's line."""
    order = await _order(ctx, order_id)
    fsan = _fsan(fsan)
    item = await ctx.db.get_inventory(fsan)
    if item is None:
        raise ArgumentRefused(f"Serial {fsan} is not in inventory.", ("fsan",))
    if not _known_model(item.model):
        raise ArgumentRefused(_unknown_model_text(item), ("fsan",))
    model = _model(model)
    if item.model.casefold() != model.casefold():
        # Either value may be the mistyped one.
        raise ArgumentRefused(
            f"Serial {fsan} is a {item.model} in inventory, not a {model}.", ("fsan", "model")
        )
    this_order = (item.order_id or "").casefold() == order.order_id.casefold()
    if item.status == "installed" and not this_order:
        raise ArgumentRefused(f"Serial {fsan} is already installed on another order.", ("fsan",))
    if item.status == "faulty":
        raise ArgumentRefused(
            f"Serial {fsan} is marked faulty in inventory; use another ONT.", ("fsan",)
        )
    result = await ctx.sim.activate_ont(order.order_id, fsan, model, ethernet_port)
    await _install(ctx, item, order, "fsan")
    return {"ont_id": result["ont_id"], "activation_status": "active"}


#: What a technician does about a dirty connector, and the word that says it is done.
CLEAN_CONNECTOR = "Clean and re-seat the fiber connector"
CLEANED = "cleaned"


@builtin(idempotent=True, read_only=True, action="Checking the light levels")
async def check_light_levels(ctx: ToolContext, fsan: str, cleaned: bool = False) -> dict[str, Any]:
    """Read the optical power at the ONT; too little light is a failure.

    ``cleaned`` says the fiber connector was cleaned and re-seated since the last
    reading. A dark reading that cleaning can fix is a ``FieldFault``; one it
    cannot (a damaged fiber) needs a fiber crew.
    """
    reading = await ctx.sim.check_light_levels(_fsan(fsan), cleaned)
    failure = light_failure(reading, cleaned)
    if failure is not None:
        raise failure
    return {key: reading[key] for key in ("rx_power_dbm", "tx_power_dbm", "light_ok")}


def light_failure(reading: Mapping[str, Any], cleaned: bool) -> ToolFailed | None:
    """What a light reading means for the technician; None when the light is good.

    Shared with the simulator served over HTTP, so both say the same words. Nothing
    after this step can work on a dark line: a dirty connector is a ``FieldFault``
    the technician cleans; a damaged fiber needs a fiber crew (``ToolFailed``).
    """
    if reading["light_ok"]:
        return None
    too_low = (
        f"The light level is too low: {reading['rx_power_dbm']} dBm received, "
        f"{LIGHT_THRESHOLD_DBM:g} dBm or better is needed."
    )
    if reading.get("cause") == DIRTY_CONNECTOR and not cleaned:
        return FieldFault(
            too_low, remedy=CLEAN_CONNECTOR, confirm=CLEANED, retry_args={"cleaned": True}
        )
    after = " even with the connector cleaned" if cleaned else ""
    return ToolFailed(
        f"{too_low} The fiber between the ONT and the splitter is damaged{after}: "
        "it needs a fiber crew."
    )


@builtin(idempotent=True, action="Configuring the Wi-Fi")
async def configure_wifi(
    ctx: ToolContext, fsan: str, ssid: str, wifi_password: str
) -> dict[str, Any]:
    """Set the Wi-Fi name and password on the ONT."""
    return await ctx.sim.configure_wifi(_fsan(fsan), ssid, wifi_password)


@builtin(
    idempotent=True,
    read_only=True,
    action="Running the speed test",
    choices={"service_tier": tuple(TIERS)},
)
async def run_speed_test(ctx: ToolContext, fsan: str, service_tier: str) -> dict[str, Any]:
    """Measure the line's speed against the customer's service tier."""
    tier = service_tier.strip().upper()
    if tier not in TIERS:
        raise ArgumentRefused(
            unknown_tier_text(service_tier.strip()), ("service_tier",), choices=tuple(TIERS)
        )
    return await ctx.sim.run_speed_test(_fsan(fsan), tier)


@builtin(idempotent=True, action="Confirming the customer is online")
async def confirm_customer_online(ctx: ToolContext, customer_online: bool) -> dict[str, Any]:
    """Record the technician's confirmation that the customer is online."""
    if not customer_online:
        raise ArgumentRefused(NOT_ONLINE, ("customer_online",))
    return {"customer_online": True}


#: What a technician hears when the customer is not online yet.
NOT_ONLINE = (
    "The customer is not online yet. Check the cabling and the customer's device, "
    "then confirm again."
)


# ---------------------------------------------------------------------- repair


@builtin(idempotent=True, read_only=True, action="Running the line test")
async def run_line_test(ctx: ToolContext, order_id: str) -> dict[str, Any]:
    """Test the customer's line for a fault."""
    order = await _order(ctx, order_id)
    # An ONT installed on this order by activate_ont or replace_equipment is new
    # equipment: the simulated fault was in the old one, so the retest passes.
    repaired = any(
        item.status == "installed" for item in await ctx.db.inventory_on_order(order.order_id)
    )
    return await ctx.sim.run_line_test(order.order_id, repaired)


# Idempotent: repeating it for the same order and new serial finds the new ONT
# already installed there and returns the same answer without touching anything.
@builtin(idempotent=True, action="Replacing the equipment")
async def replace_equipment(
    ctx: ToolContext, order_id: str, new_serial: str, old_serial: Any = None
) -> dict[str, Any]:
    """Swap the customer's ONT for one from inventory; the old one is marked faulty.

    ``old_serial`` (else the order's ``current_serial`` detail) is whatever the
    order recorded: anything but a non-blank string is taken as unknown.
    """
    order = await _order(ctx, order_id)
    new = _fsan(new_serial, "new_serial")
    item = await ctx.db.get_inventory(new)
    if item is None:
        raise ArgumentRefused(f"Serial {new} is not in inventory.", ("new_serial",))
    done = {"new_serial": item.serial, "new_model": item.model, "replaced": True}
    if item.status == "installed" and (item.order_id or "").casefold() == order.order_id.casefold():
        return done
    if item.status != "available":
        raise ArgumentRefused(
            f"Serial {new} is not available: it is {item.status}.", ("new_serial",)
        )
    if not _known_model(item.model):
        raise ArgumentRefused(_unknown_model_text(item), ("new_serial",))
    old = _serial_or_none(old_serial) or _serial_or_none(order.details.get("current_serial"))
    if old is not None and old.casefold() == new.casefold():
        raise ArgumentRefused(
            f"The new serial {new} is the same as the old one: give the replacement's serial.",
            ("new_serial",),
        )
    await ctx.sim.replace_equipment(order.order_id, item.serial, _model(item.model), old)
    if old is not None and await ctx.db.get_inventory(old) is not None:
        await ctx.db.set_inventory_status(old, "faulty", order.order_id)
    await _install(ctx, item, order, "new_serial")
    return done


def _same(order_id: str | None, other: str) -> bool:
    return (order_id or "").casefold() == other.casefold()


async def _install(ctx: ToolContext, item: InventoryItem, order: Order, argument: str) -> None:
    """Record ``item`` installed on ``order``, unless another order took it meanwhile.

    The move is conditional on the status read before (another instance may have
    installed the same serial since): of two installs at once, one is refused.
    """
    mine = _same(item.order_id, order.order_id)
    expected = None if mine and item.status == "installed" else ("available",)
    try:
        await ctx.db.set_inventory_status(
            item.serial, "installed", order.order_id, expected=expected
        )
    except InventoryConflict as exc:
        now = await ctx.db.get_inventory(item.serial)
        if now is not None and now.status == "installed" and _same(now.order_id, order.order_id):
            return  # the same install, finished first by a replay of this turn elsewhere
        raise ArgumentRefused(
            f"Serial {item.serial} was just taken: it is {exc.status} now; use another ONT.",
            (argument,),
        ) from None


__all__ = [
    "CLEANED",
    "CLEAN_CONNECTOR",
    "NOT_ONLINE",
    "ORDER_ESCALATION_KINDS",
    "ToolContext",
    "ToolFunc",
    "ToolRegistry",
    "ToolSpec",
    "args_model_for",
    "default_registry",
    "light_failure",
]
