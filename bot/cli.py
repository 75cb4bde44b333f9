"""The ``techassist`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bot.client import DEFAULT_URL, run_client
from bot.logs import configure_logging
from bot.settings import Settings
from bot.wiring import build, open_workorders
from bridges.memory import MemoryBridge, render
from orchestrator_core.errors import BridgeError, PlanError, StoreError, WorkOrderError
from orchestrator_core.plans import validate_files
from orchestrator_core.tools import default_registry
from orchestrator_core.workorders import prioritize


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``techassist`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print("error: invalid settings:", file=sys.stderr)
        for error in exc.errors(include_url=False):
            name = "TECHASSIST_" + ".".join(str(part) for part in error["loc"]).upper()
            print(f"  {name}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        status: int = args.run(settings, args)
        return status
    except PlanError as exc:
        print("The plans are invalid, so TechAssist will not start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except (WorkOrderError, StoreError, BridgeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="techassist", description="TechAssist: guides field technicians through work orders."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="chat in this terminal, with no server")
    chat.add_argument("--cuid", help="identify as this technician straight away")
    chat.set_defaults(run=_chat)

    serve = commands.add_parser("serve", help="run the server (websocket bridge, health checks)")
    serve.add_argument("--host", help="address to listen on (default: TECHASSIST_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on, 0 for any free one")
    serve.set_defaults(run=_serve)

    client = commands.add_parser("client", help="talk to a running server from this terminal")
    client.add_argument("--url", default=None, help=f"server URL (default: {DEFAULT_URL})")
    client.add_argument("--cuid", help="identify as this technician straight away")
    client.set_defaults(run=_client)

    orders = commands.add_parser("orders", help="manage the work-order database")
    order_commands = orders.add_subparsers(required=True, metavar="ACTION")
    seed = order_commands.add_parser("seed", help="load the demo data into an empty database")
    seed.set_defaults(run=_orders_seed)
    imp = order_commands.add_parser("import", help="import technicians, orders and inventory")
    imp.add_argument("file", type=Path, help="a JSON file in the import format (see README)")
    imp.set_defaults(run=_orders_import)
    lst = order_commands.add_parser("list", help="list a technician's orders, most urgent first")
    lst.add_argument("--cuid", required=True)
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(run=_orders_list)

    plans = commands.add_parser("plans", help="check plan files")
    plan_commands = plans.add_subparsers(required=True, metavar="ACTION")
    validate = plan_commands.add_parser("validate", help="validate plan files")
    validate.add_argument("files", nargs="*", type=Path, help="default: the configured plans")
    validate.set_defaults(run=_plans_validate)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import serve  # the web stack loads only for the commands that need it

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return serve(settings.model_copy(update=overrides))


def _client(settings: Settings, args: argparse.Namespace) -> int:
    return run_client(args.url or DEFAULT_URL, args.cuid)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_chat_loop(settings, args.cuid))


async def _chat_loop(settings: Settings, cuid: str | None) -> int:
    services = build(settings)
    user = cuid.upper() if cuid else getpass.getuser()
    bridge = MemoryBridge(services.orchestrator, user, bridge="terminal")
    print("TechAssist chat. Type 'help' at any point, 'quit' to leave.\n")
    try:
        print(render(await bridge.start(cuid)))
        while not bridge.closed:
            try:
                line = await asyncio.to_thread(input, "> ")
            except (EOFError, KeyboardInterrupt):
                line = "quit"
            print(render(await bridge.say(line)))
    finally:
        await services.aclose()
    return 0


def _orders_seed(settings: Settings, args: argparse.Namespace) -> int:
    db = open_workorders(settings.model_copy(update={"seed_demo": False}))
    try:
        seeded = db.seed_demo()
    finally:
        db.close()
    where = settings.workorders_path
    print(f"Seeded the demo data into {where}." if seeded else f"{where} already has data.")
    return 0


def _orders_import(settings: Settings, args: argparse.Namespace) -> int:
    from orchestrator_core.plans import load_plans
    from orchestrator_core.simulator import MODELS, TIERS
    from orchestrator_core.workorders import ImportExpectations

    # Warn about what technicians will have to make up for: the known tiers and
    # models, and the order types the configured plans serve and ask a tier for.
    notes: list[str] = []
    expect = ImportExpectations(service_tiers=tuple(TIERS), models=MODELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            plans = load_plans(settings.plans_dir, default_registry())
    except PlanError:
        notes.append(
            f"the plans in {settings.plans_dir} do not load (see `techassist plans validate`), "
            "so orders were not checked against them"
        )
    else:
        tiered = [
            order_type
            for plan in plans.plans
            if any(
                "order.service_tier" in step.inputs.values() or "service_tier" in step.parameters
                for step in plan.steps
            )
            for order_type in plan.order_types
        ]
        expect = ImportExpectations(
            service_tiers=tuple(TIERS),
            models=MODELS,
            tier_order_types=tiered,
            planned_order_types=[t for plan in plans.plans for t in plan.order_types],
        )
    db = open_workorders(settings.model_copy(update={"seed_demo": False}))
    try:
        summary = db.import_file(args.file, expect)
    finally:
        db.close()
    print(f"Imported {summary}.")
    for line in [*summary.warnings, *notes]:
        print(f"warning: {line}")
    return 0


def _orders_list(settings: Settings, args: argparse.Namespace) -> int:
    db = open_workorders(settings)
    try:
        cuid = args.cuid.upper()
        if db.get_technician(cuid) is None:
            print(f"No technician with CUID {cuid}.", file=sys.stderr)
            return 1
        orders = db.list_orders(cuid)
    finally:
        db.close()
    ranked = {o.order_id: i for i, o in enumerate(prioritize(orders), 1)}
    orders.sort(key=lambda o: (ranked.get(o.order_id, len(ranked) + 1), o.order_id))
    if args.json:
        rows = [dict(o.model_dump(mode="json"), priority=ranked.get(o.order_id)) for o in orders]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'#':>3}  {'ORDER':<10} {'TYPE':<13} {'STATUS':<12} {'SCHEDULED START':<26} CUSTOMER")
    for order in orders:
        rank = ranked.get(order.order_id)
        print(
            f"{rank if rank else '-':>3}  {order.order_id:<10} {order.order_type:<13} "
            f"{order.status:<12} {str(order.scheduled_start):<26} {order.customer_name}"
        )
    return 0


def _plans_validate(settings: Settings, args: argparse.Namespace) -> int:
    files: list[Path] = args.files or sorted(settings.plans_dir.glob("*.json"))
    files = [f for f in files if not f.name.endswith(".schema.json")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        problems = validate_files(files, default_registry())
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(files)} plan file(s) valid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
