"""The ``techassist`` command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bot.client import DEFAULT_URL, run_client
from bot.logs import configure_logging
from bot.screen import screen
from bot.settings import Settings, StartupError, load_settings, source, unknown_variables
from bot.wiring import (
    Services,
    build,
    load_declared_tools,
    open_workorders,
    plan_files,
    seed_workorders,
    start_http_tools,
    tool_registry,
)
from bridges.memory import MemoryBridge
from orchestrator_core.credentials import DEFAULT_TOKEN_TTL, Credentials
from orchestrator_core.errors import BridgeError, PlanError, StoreError, WorkOrderError
from orchestrator_core.importer import ImportSummary, seed_demo
from orchestrator_core.orders import Order, prioritize
from orchestrator_core.plans import check_files
from orchestrator_core.tools import default_registry
from orchestrator_core.turns import Reply
from orchestrator_core.workorders import WorkOrders

if TYPE_CHECKING:  # imported by the tools commands only
    from orchestrator_core.http_tools import HostCheck

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``techassist`` command; returns the exit status."""
    try:
        status = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (``techassist orders list | head -1``): stop quietly,
        # with stdout pointed at /dev/null so that the flush at exit has nowhere to fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        for warning in unknown_variables():
            print(f"warning: {warning}", file=sys.stderr)
        status: int = args.run(settings, args)
        return status
    except StartupError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    except PlanError as exc:
        print("error: the plans are invalid, so TechAssist will not start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except (WorkOrderError, StoreError, BridgeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _version() -> str:
    try:
        return version("techassist")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="techassist", description="TechAssist: guides field technicians through work orders."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(group: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=summary, description=description)
        return sub

    chat = command(
        commands,
        "chat",
        "chat in this terminal, with no server",
        "Hold the technician's conversation in this terminal, on the local data, with no "
        "server. 'quit' or Ctrl-C leaves; the session is kept.",
    )
    chat.add_argument("--cuid", help="identify as this technician straight away")
    chat.set_defaults(run=_chat)

    serve = command(
        commands,
        "serve",
        "run the server (websocket bridge, health checks)",
        "Run the server: the websocket bridge at /start_task, /healthz and /readyz, and the "
        "Slack bridge when both Slack tokens are set. Ctrl-C stops it.",
    )
    serve.add_argument("--host", help="address to listen on (default: TECHASSIST_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to listen on, 0 for any free one (default: TECHASSIST_PORT)"
    )
    serve.set_defaults(run=_serve)

    simulate = command(
        commands,
        "simulate",
        "serve the network simulator over HTTP",
        "Serve the network simulator (provisioning, test head, speed test, dispatch) over "
        "HTTP, for HTTP tools to call; its API is described at /docs and /openapi.json. "
        "Faults come from TECHASSIST_SIM_FAULTS or the admin endpoint. Ctrl-C stops it.",
    )
    simulate.add_argument("--host", help="address to listen on (default: TECHASSIST_SIM_HOST)")
    simulate.add_argument(
        "--port",
        type=int,
        help="port to listen on, 0 for any free one (default: TECHASSIST_SIM_PORT)",
    )
    simulate.set_defaults(run=_simulate)

    client = command(
        commands,
        "client",
        "talk to a running server from this terminal",
        "Talk to a running server over the websocket protocol, as client.py does. "
        "'details' shows the data behind the last message; 'quit' or Ctrl-C leaves.",
    )
    client.add_argument("--url", default=None, help=f"server URL (default: {DEFAULT_URL})")
    client.add_argument("--cuid", help="identify as this technician straight away")
    client.add_argument(
        "--token", help="the technician's token, for a server that needs one (TECHASSIST_TOKEN)"
    )
    client.set_defaults(run=_client)

    tokens = command(
        commands,
        "tokens",
        "issue and revoke technicians' tokens and sign-in codes",
        "Issue and revoke the tokens technicians connect with, and the one-time codes that "
        "sign them in on Slack. Only digests are stored; a token or code is shown once.",
    )
    token_commands = tokens.add_subparsers(required=True, metavar="ACTION")
    issue = command(
        token_commands,
        "issue",
        "print a new token for a technician",
        "Print a new token for a technician on standard output (the only time it is shown). "
        "Give it to the technician: client.py --token TOKEN, or TECHASSIST_TOKEN.",
    )
    issue.add_argument("--cuid", required=True, help="the technician's CUID, e.g. AB1234")
    issue.add_argument(
        "--ttl",
        type=_duration,
        default=DEFAULT_TOKEN_TTL,
        help="how long it is valid: a number with s, m, h or d (default: 30d)",
    )
    issue.set_defaults(run=_tokens_issue)
    revoke = command(
        token_commands,
        "revoke",
        "revoke a token, or all of a technician's tokens",
        "Revoke one token, or with --cuid every token of a technician. Connections it "
        "opened stay until they close; new ones are refused.",
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("token", nargs="?", help="the token to revoke")
    which.add_argument("--cuid", help="revoke every token of this technician")
    revoke.set_defaults(run=_tokens_revoke)
    code = command(
        token_commands,
        "code",
        "print a one-time sign-in code for Slack",
        "Print a 6-digit code that signs a technician in on Slack once, within 10 minutes "
        "(with TECHASSIST_SLACK_SELF_IDENTIFY=true). They send their CUID and the code.",
    )
    code.add_argument("--cuid", required=True, help="the technician's CUID, e.g. AB1234")
    code.set_defaults(run=_tokens_code)

    operators = command(
        commands,
        "operators",
        "manage the dispatcher console's operator accounts",
        "Add, list and remove the operators who sign in to the dispatcher console (/ops). "
        "Passwords are stored as argon2 hashes in the work-order database.",
    )
    operator_commands = operators.add_subparsers(required=True, metavar="ACTION")
    op_add = command(
        operator_commands,
        "add",
        "add an operator, or set a new password",
        "Add an operator with a password typed twice at a prompt that does not echo it "
        "(or read from standard input with --password-stdin). An existing operator gets "
        "the new password.",
    )
    op_add.add_argument("name", help="the operator's name, e.g. ana")
    op_add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    op_add.set_defaults(run=_operators_add)
    op_list = command(operator_commands, "list", "list the operators", "List the operators' names.")
    op_list.set_defaults(run=_operators_list)
    op_remove = command(
        operator_commands,
        "remove",
        "remove an operator",
        "Remove an operator: they can no longer sign in to the console.",
    )
    op_remove.add_argument("name", help="the operator's name")
    op_remove.set_defaults(run=_operators_remove)

    orders = command(
        commands,
        "orders",
        "manage the work-order database",
        "Seed, import and list the technicians' work orders in the work-order database.",
    )
    order_commands = orders.add_subparsers(required=True, metavar="ACTION")
    seed = command(
        order_commands,
        "seed",
        "load the demo data into an empty database",
        "Load the demo technicians, orders and inventory into the work-order database, "
        "if it is empty.",
    )
    seed.set_defaults(run=_orders_seed)
    imp = command(
        order_commands,
        "import",
        "import technicians, orders and inventory",
        "Import technicians, orders and inventory from a JSON file (the format is in the "
        "README). Every record is checked first; on an error nothing is imported.",
    )
    imp.add_argument("file", type=Path, help="a JSON file in the import format (see README)")
    imp.set_defaults(run=_orders_import)
    lst = command(
        order_commands,
        "list",
        "list a technician's orders, most urgent first",
        "List a technician's orders: the open ones numbered by priority, then the others.",
    )
    lst.add_argument("--cuid", required=True, help="the technician's CUID, e.g. AB1234")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(run=_orders_list)

    db = command(
        commands,
        "db",
        "manage the work-order database's schema",
        "Create or migrate the schema of the PostgreSQL database that "
        "TECHASSIST_DATABASE_URL names. The embedded SQLite file needs nothing.",
    )
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    upgrade = command(
        db_commands,
        "upgrade",
        "create or migrate the schema",
        "Apply the schema migrations the database lacks, each once, in order; "
        "safe to run again and from several instances at once.",
    )
    upgrade.set_defaults(run=_db_upgrade)

    plans = command(
        commands, "plans", "check plan files", "Check plan files before TechAssist loads them."
    )
    plan_commands = plans.add_subparsers(required=True, metavar="ACTION")
    validate = command(
        plan_commands,
        "validate",
        "validate plan files",
        "Validate plan files and list every problem with its file and JSON path.",
    )
    validate.add_argument(
        "files", nargs="*", type=Path, help="plan files (default: those in TECHASSIST_PLANS_DIR)"
    )
    validate.set_defaults(run=_plans_validate)

    tools = command(
        commands,
        "tools",
        "show the tools and test the declared ones' hosts",
        "Show the built-in tools and those TECHASSIST_TOOLS_FILE declares, and check that "
        "each declared tool's host answers.",
    )
    tool_commands = tools.add_subparsers(required=True, metavar="ACTION")
    listing = command(
        tool_commands,
        "list",
        "list every tool",
        "List every tool plans may name: built-in ones and declared HTTP tools.",
    )
    listing.set_defaults(run=_tools_list)
    check = command(
        tool_commands,
        "check",
        "test that each declared host answers",
        "Load the tools file with its secret headers from the environment, and send each "
        "declared host a HEAD request: any HTTP answer counts as reachable.",
    )
    check.set_defaults(run=_tools_check)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import serve  # the web stack loads only for the commands that need it

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return serve(settings.model_copy(update=overrides), given=set(overrides))


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.simulate import simulate  # the web stack loads only for the commands that need it

    given = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    overrides = {f"sim_{k}": v for k, v in given.items()}
    return simulate(settings.model_copy(update=overrides), given=set(given))


def _client(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or (settings.token.get_secret_value() if settings.token else None)
    return run_client(args.url or DEFAULT_URL, args.cuid, token or None)


_DURATION = re.compile(r"\s*(\d+)\s*([smhd])\s*", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` or ``3600s`` as a positive duration."""
    match = _DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give a positive number with s, m, h or d, like 30d"
        )
    try:
        return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration") from None


async def _with_credentials(settings: Settings, use: Callable[[Credentials], Awaitable[T]]) -> T:
    async def run(db: WorkOrders) -> T:
        await seed_workorders(settings, db)
        return await use(Credentials(db))

    return await _with_workorders(settings, run)


def _tokens_issue(settings: Settings, args: argparse.Namespace) -> int:
    issued = asyncio.run(_with_credentials(settings, lambda c: c.issue_token(args.cuid, args.ttl)))
    until = issued.expires_at.isoformat(timespec="seconds")
    print(f"A token for {issued.cuid}, valid until {until}:", file=sys.stderr)
    print(issued.secret)
    return 0


def _tokens_revoke(settings: Settings, args: argparse.Namespace) -> int:
    if args.cuid:
        count = asyncio.run(_with_credentials(settings, lambda c: c.revoke_tokens(args.cuid)))
        print(f"Revoked {count} token(s) of {args.cuid.strip().upper()}.")
        return 0
    if not asyncio.run(_with_credentials(settings, lambda c: c.revoke_token(args.token))):
        print("error: no such token (it may be revoked or expired already)", file=sys.stderr)
        return 1
    print("Revoked the token.")
    return 0


def _tokens_code(settings: Settings, args: argparse.Namespace) -> int:
    issued = asyncio.run(_with_credentials(settings, lambda c: c.issue_code(args.cuid)))
    print(
        f"A sign-in code for {issued.cuid}, for one use within 10 minutes: in Slack, send "
        f"'{issued.cuid} {issued.secret}'.",
        file=sys.stderr,
    )
    print(issued.secret)
    return 0


def _read_password(from_stdin: bool) -> str | None:
    """The new password, from standard input or typed twice; None (after saying why) if not."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        print("error: the two passwords differ; nothing was changed", file=sys.stderr)
        return None
    return first


def _operators_add(settings: Settings, args: argparse.Namespace) -> int:
    from orchestrator_core.operators import OperatorError, Operators, check_name, check_password

    try:
        name = check_name(args.name)
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    password = _read_password(args.password_stdin)
    if password is None:
        return 1
    try:
        check_password(password)
    except OperatorError as exc:
        print(f"error: {exc}; nothing was changed", file=sys.stderr)
        return 1

    async def add(db: WorkOrders) -> bool:
        operators = Operators(db)
        existed = await operators.exists(name)
        await operators.add(name, password)
        return existed

    existed = asyncio.run(_with_workorders(settings, add))
    print(f"Set a new password for operator {name}." if existed else f"Added operator {name}.")
    return 0


def _operators_list(settings: Settings, args: argparse.Namespace) -> int:
    from orchestrator_core.operators import Operators

    names = asyncio.run(_with_workorders(settings, lambda db: Operators(db).names()))
    for name in names:
        print(name)
    if not names:
        print("No operators yet: add one with techassist operators add NAME.", file=sys.stderr)
    return 0


def _operators_remove(settings: Settings, args: argparse.Namespace) -> int:
    from orchestrator_core.operators import Operators

    if not asyncio.run(_with_workorders(settings, lambda db: Operators(db).remove(args.name))):
        print(f"error: no operator {args.name.strip()!r}", file=sys.stderr)
        return 1
    print(f"Removed operator {args.name.strip()}.")
    return 0


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    """The terminal chat. Input is read on this thread, so Ctrl-C interrupts it at once."""
    with asyncio.Runner() as runner:
        services = runner.run(_build(settings))
        try:
            _chat_loop(runner, services, args.cuid)
        finally:
            runner.run(services.aclose())
    return 0


async def _build(settings: Settings) -> Services:
    return await build(settings)


def _chat_loop(runner: asyncio.Runner, services: Services, cuid: str | None) -> None:
    user = cuid.upper() if cuid else getpass.getuser()
    bridge = MemoryBridge(services.orchestrator, user, bridge="terminal")

    def turn(coroutine: Coroutine[Any, Any, T]) -> T:
        return runner.run(coroutine)

    print("TechAssist chat. Type 'help' at any point, 'quit' to leave.\n")
    try:
        print(show_replies(turn(bridge.start(cuid))))
        while not bridge.closed:
            try:
                line = input("> ")
            except EOFError:
                line = "quit"
            print(show_replies(turn(bridge.say(line))))
    except KeyboardInterrupt:
        # Ctrl-C, at the prompt or during a turn: leave as 'quit' does (the session is kept).
        print()
        print(show_replies(turn(bridge.say("quit"))))


def show_replies(replies: Sequence[Reply]) -> str:
    """A turn's replies as the terminal shows them: each message, then its choices."""
    return "\n".join(screen(reply.text, reply.choices) for reply in replies)


async def _with_workorders(settings: Settings, use: Callable[[WorkOrders], Awaitable[T]]) -> T:
    """Run ``use`` on the work orders the settings name, closed after."""
    workorders, audit = await open_workorders(settings)
    try:
        return await use(workorders)
    finally:
        await audit.aclose()
        await workorders.aclose()


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url is None:
        print("The work orders are in the SQLite file; it needs no upgrade.")
        return 0
    from orchestrator_core.pg.migrate import latest, upgrade

    applied = asyncio.run(upgrade(settings.database_url.get_secret_value()))
    if applied:
        print(f"Applied {', '.join(applied)}; the schema is at version {latest()}.")
    else:
        print(f"The schema is up to date (version {latest()}).")
    return 0


def _orders_seed(settings: Settings, args: argparse.Namespace) -> int:
    seeded = asyncio.run(_with_workorders(settings, seed_demo))
    where = "PostgreSQL" if settings.database_url else settings.workorders_path
    print(f"Seeded the demo data into {where}." if seeded else f"{where} already has data.")
    return 0


def _orders_import(settings: Settings, args: argparse.Namespace) -> int:
    from orchestrator_core.importer import ImportExpectations, ImportTooLarge, import_file
    from orchestrator_core.plans import load_plans
    from orchestrator_core.simulator import MODELS, TIERS

    # Warn about what technicians will have to make up for: the known tiers and
    # models, and the order types the configured plans serve and ask a tier for.
    notes: list[str] = []
    expect = ImportExpectations(service_tiers=tuple(TIERS), models=MODELS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            plans = load_plans(settings.plans_dir, tool_registry(settings))
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

    def run(db: WorkOrders) -> Awaitable[ImportSummary]:
        return import_file(db, args.file, expect, max_bytes=settings.import_max_bytes)

    try:
        summary = asyncio.run(_with_workorders(settings, run))
    except ImportTooLarge as exc:
        where = f"TECHASSIST_IMPORT_MAX_BYTES, from {source('import_max_bytes')}"
        raise WorkOrderError(f"{exc} ({where}); raise it to import a larger file") from None
    print(f"Imported {summary}.")
    for line in [*summary.warnings, *notes]:
        print(f"warning: {line}")
    return 0


def _orders_list(settings: Settings, args: argparse.Namespace) -> int:
    cuid = args.cuid.upper()

    async def lookup(db: WorkOrders) -> list[Order] | None:
        await seed_workorders(settings, db)
        if await db.get_technician(cuid) is None:
            return None
        return await db.list_orders(cuid)

    orders = asyncio.run(_with_workorders(settings, lookup))
    if orders is None:
        print(f"No technician with CUID {cuid}.", file=sys.stderr)
        return 1
    if not orders:
        print("[]" if args.json else f"{cuid} has no orders.")
        return 0
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
    files: list[Path] = args.files or plan_files(settings.plans_dir)
    files = [f for f in files if not f.name.endswith(".schema.json")]
    if args.files and not files:
        print("error: a JSON Schema is not a plan: name plan files to validate", file=sys.stderr)
        return 1
    if not files:
        where = f"TECHASSIST_PLANS_DIR, from {source('plans_dir')}"
        problem = "has no plan files" if settings.plans_dir.is_dir() else "does not exist"
        print(
            f"error: the plans directory {settings.plans_dir} ({where}) {problem}: there is "
            "nothing to validate; name plan files, or set TECHASSIST_PLANS_DIR to a directory "
            "of plan files",
            file=sys.stderr,
        )
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        problems, cautions = check_files(files, tool_registry(settings))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    for caution in cautions:
        print(f"warning: {caution}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"{len(files)} plan file(s) valid.")
    return 0


def _tools_list(settings: Settings, args: argparse.Namespace) -> int:
    declared = load_declared_tools(settings)
    registry = tool_registry(settings)
    declared_names = set(declared.tools) if declared else set()
    for name in registry.names():
        spec = registry.specs()[name]
        kind = "read-only" if spec.read_only else "idempotent" if spec.idempotent else "acts once"
        if declared is not None and name in declared_names:
            tool = declared.tools[name]
            origin = f"{tool.method} {tool.url}"
        else:
            origin = "built-in"
        arguments = ", ".join(
            f"{arg}{'' if arg in spec.required else '?'}" for arg in sorted(spec.accepted)
        )
        print(f"{name:<28} {kind:<10} {origin}")
        print(f"    {spec.description}  ({arguments or 'no arguments'})")
    return 0


def _tools_check(settings: Settings, args: argparse.Namespace) -> int:
    if settings.tools_file is None:
        print(
            "error: TECHASSIST_TOOLS_FILE is not set: there are no declared tools to check",
            file=sys.stderr,
        )
        return 1
    runtime = start_http_tools(settings, default_registry())
    assert runtime is not None  # a tools file is set

    async def check() -> list[HostCheck]:
        try:
            return await runtime.check()
        finally:
            await runtime.aclose()

    results = asyncio.run(check())
    for result in results:
        print(f"{'ok' if result.reachable else 'FAIL':<5} {result.origin}  {result.detail}")
    unreachable = sum(not r.reachable for r in results)
    if unreachable:
        print(f"{unreachable} of {len(results)} host(s) unreachable.", file=sys.stderr)
        return 1
    print(f"{len(results)} host(s) reachable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
