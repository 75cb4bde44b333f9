"""Benchmark: Slack events through the project's fake Slack while every tool takes 2 s.

Run ``python -m bench.slack [--events N] [--in-flight W] [--rate R] [--quick]``. In one
process and one event loop it starts ``tests.fake_slack.FakeSlack`` on
127.0.0.1, builds TechAssist on a temporary data directory with a synthetic
dataset (one technician with a Slack user id, one installation order and one
good ONT per DM channel) and a network simulator whose every operation takes
2 s, and starts the real ``SlackBridge`` on the fake.

N direct messages then go out as fast as the fake sends them, with at most W
envelopes unacked at a time (with ``--rate``, also at most R per second): four
turns per technician (hi; yes; the ONT's serial, model and port, which
activates the ONT and reads its light levels; the Wi-Fi values, which configure
the Wi-Fi and run the speed test), sent round by round over all the DM
channels, so half the turns run two 2-second simulator operations and the
other turns of a channel queue behind them.
For each envelope the fake records when it went out and when its ack came back.
Each turn must be answered by exactly one message (a post, or the update of the
turn's progress line), in order, saying what that turn should say.

In the same run, the same number of the same events go to a bare slack-bolt
``AsyncApp`` with an ``AsyncSocketModeHandler`` on the same fake, whose only
listener does nothing (bolt acks events itself), so the bridge's ack latency is
printed next to bolt's own, as a ratio. And before its DMs the bridge gets as
many messages from another bot, which it acks and ignores: its ack path without
any turn running beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bench.core import SCRIPT, dataset, good_serials
from bot.app import settle_heap
from bot.settings import Settings
from bot.wiring import build
from bridges.slack import SlackBridge, SlackConfig
from tests.fake_slack import FakeSlack, bot_message, message_im

SIM_LATENCY_MS = 2000
TARGET_ACK_P99_MS = 50.0
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
#: Bounds: the whole run, and one phase's wait for its acks or answers.
RUN_TIMEOUT = 600.0
PHASE_TIMEOUT = 120.0
PING_INTERVAL = 10.0
PROGRESS_AFTER = 1.0
WARM_UP = 20
"""Events another bot posts, sent to each app first: they pay one-time costs, and are acked."""


@dataclass(frozen=True)
class Line:
    """One turn of a technician's script: what is typed, and what the answer must contain."""

    label: str
    text: str
    expect: str
    tools: int
    """Simulator operations the turn runs (each takes SIM_LATENCY_MS)."""


LINES = [
    Line("hi", "hi", "BENCH-{i:05d}", 0),
    Line("yes", "yes", "FSAN", 0),
    Line("ONT values: activate, light", SCRIPT[1], "is active", 2),
    Line("Wi-Fi values: Wi-Fi, speed test", SCRIPT[2], "Speed test passed", 2),
]


def user_id(i: int) -> str:
    return f"UB{i:05d}"


def channel_id(i: int) -> str:
    return f"DB{i:05d}"


def slack_dataset(serials: list[str]) -> dict[str, Any]:
    """``bench.core``'s dataset, each technician with a Slack user id."""
    data = dataset(serials)
    for i, tech in enumerate(data["technicians"]):
        tech["slack_user_id"] = user_id(i)
    return data


@dataclass(frozen=True)
class Turn:
    """One direct message of the run: which technician, which line of the script."""

    tech: int
    line: int
    text: str


def plan_turns(events: int, serials: list[str]) -> list[Turn]:
    """``events`` turns, round by round: every technician's first line, then every second..."""
    technicians = len(serials)
    turns = []
    for line_no, line in enumerate(LINES):
        for i in range(technicians):
            text = line.text % serials[i] if "%s" in line.text else line.text
            turns.append(Turn(i, line_no, text))
    return turns[:events]


# --- sending, with at most W envelopes unacked ---------------------------------------


class Window:
    """At most ``size`` envelopes in flight, an ack frees a place (size 0: no bound); and with
    a ``rate``, envelope k goes out no earlier than k / rate seconds after the first."""

    def __init__(self, fake: FakeSlack, size: int, rate: float = 0.0) -> None:
        self.fake = fake
        self.rate = rate
        self._places = asyncio.Semaphore(size) if size else None
        self._waiting: set[str] = set()
        self._seen = 0

    def _scan(self) -> bool:
        """Free a place for each new ack of ours; called by ``wait_for`` on every change."""
        acks = self.fake.acks
        for ack in acks[self._seen :]:
            if ack.envelope_id in self._waiting:
                self._waiting.discard(ack.envelope_id)
                if self._places is not None:
                    self._places.release()
        self._seen = len(acks)
        return False  # never done: the watcher runs until cancelled

    async def watch(self) -> None:
        await self.fake.wait_for(self._scan, timeout=math.inf)

    async def send(self, events: list[dict[str, Any]]) -> list[str]:
        """Send ``events`` in order; their envelope ids."""
        ids = []
        start = time.monotonic()
        for k, event in enumerate(events):
            if self.rate:
                # Pacing, not waiting for a condition: an open-loop arrival schedule.
                await asyncio.sleep(max(0.0, start + k / self.rate - time.monotonic()))
            if self._places is not None:
                await self._places.acquire()
            envelope_id = await self.fake.send_event(event)
            ids.append(envelope_id)
            if not self.fake.envelope(envelope_id).acked:
                self._waiting.add(envelope_id)
            elif self._places is not None:  # acked while send_event was still awaiting
                self._places.release()
        return ids


@dataclass(frozen=True)
class Pace:
    """How events are sent: at most ``in_flight`` unacked (0: no bound), at most ``rate``
    per second (0: as fast as the fake can)."""

    in_flight: int
    rate: float = 0.0

    def describe(self) -> str:
        window = f"at most {self.in_flight} unacked" if self.in_flight else "no bound on unacked"
        speed = f"at most {self.rate:g} per second" if self.rate else "as fast as the fake can"
        return f"{speed}, {window}"


async def send_all(fake: FakeSlack, events: list[dict[str, Any]], pace: Pace) -> list[str]:
    """Send ``events`` in order at ``pace``, then wait for every ack; their envelope ids."""
    window = Window(fake, pace.in_flight, pace.rate)
    watcher = asyncio.create_task(window.watch())
    try:
        ids = await window.send(events)
        await wait(fake, lambda: all(fake.envelope(i).acked for i in ids), "the acks")
        return ids
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def wait(fake: FakeSlack, predicate: Callable[[], Any], what: str) -> None:
    """``fake.wait_for`` within PHASE_TIMEOUT, failing with one line instead of the summary."""
    try:
        await fake.wait_for(predicate, timeout=PHASE_TIMEOUT, what=what)
    except AssertionError as exc:
        raise RuntimeError(str(exc).splitlines()[0]) from None


def other_bot(n: int, technicians: int) -> list[dict[str, Any]]:
    """Messages from another bot in the DM channels: every app dispatches and acks them, and
    the bridge starts no turn for them."""
    return [
        bot_message(
            f"beep {k}", bot_id="BOTHER", user="UOTHER", channel=channel_id(k % technicians)
        )
        for k in range(n)
    ]


def warm_up_events() -> list[dict[str, Any]]:
    return other_bot(WARM_UP, 1)


def dms(turns: list[Turn]) -> list[dict[str, Any]]:
    return [message_im(user_id(t.tech), t.text, channel=channel_id(t.tech)) for t in turns]


# --- what the fake saw ---------------------------------------------------------------


@dataclass
class Acks:
    """One phase's events: sending time and ack latencies, as the fake recorded them."""

    latencies: list[float]
    sending: float
    """Seconds from the first envelope sent to the last."""
    redelivered: int
    cpu: float
    """CPU seconds of this whole process while the phase sent and was acked."""

    @classmethod
    def of(cls, fake: FakeSlack, ids: list[str], cpu: float) -> Acks:
        envelopes = [fake.envelope(i) for i in ids]
        latencies = [e.acked_at - e.sent_at for e in envelopes if e.acked_at is not None]
        events = {e.event_id for e in envelopes}
        redelivered = sum(
            1 for e in fake.envelopes_sent if e.retry_attempt > 0 and e.event_id in events
        )
        return cls(latencies, envelopes[-1].sent_at - envelopes[0].sent_at, redelivered, cpu)


@dataclass
class Answer:
    at: float
    text: str
    how: str
    """``post``, or ``update`` of a progress line."""


@dataclass
class Answers:
    """The bot's messages per channel, read incrementally from ``fake.calls``.

    A turn is answered by a post with blocks (a quick turn), or by the update of
    its progress line (a post without blocks, made when a turn runs over a second).
    """

    fake: FakeSlack
    by_channel: defaultdict[str, list[Answer]] = field(default_factory=lambda: defaultdict(list))
    progress: dict[tuple[str, str], int] = field(default_factory=dict)
    """Each progress line and how many times it was updated."""
    problems: list[str] = field(default_factory=list)
    count: int = 0
    posts_at: list[float] = field(default_factory=list)
    updates_at: list[float] = field(default_factory=list)
    _seen: int = 0

    def scan(self) -> int:
        calls = self.fake.calls
        for call in calls[self._seen :]:
            if call.method not in ("chat.postMessage", "chat.update"):
                continue
            if not call.ok:
                self.problems.append(f"a failed {call.method}: {call.response.get('error')}")
                continue
            channel = str(call.args.get("channel"))
            text = str(call.args.get("text", ""))
            if call.method == "chat.postMessage":
                self.posts_at.append(call.at)
                if call.args.get("blocks"):
                    self._answer(channel, Answer(call.at, text, "post"))
                else:
                    self.progress[(channel, str(call.response["ts"]))] = 0
            else:
                self.updates_at.append(call.at)
                key = (channel, str(call.args.get("ts")))
                if key not in self.progress:
                    self.problems.append(f"an update of a message that was no progress line: {key}")
                    continue
                self.progress[key] += 1
                self._answer(channel, Answer(call.at, text, "update"))
        self._seen = len(calls)
        return self.count

    def _answer(self, channel: str, answer: Answer) -> None:
        self.by_channel[channel].append(answer)
        self.count += 1


@dataclass
class Check:
    """Whether every turn got exactly one answer, in order, saying the right thing."""

    answered: int = 0
    missing: int = 0
    extra: int = 0
    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.wrong)


def check(
    turns: list[Turn], ids: list[str], answers: Answers
) -> tuple[Check, dict[int, list[float]]]:
    """Match each channel's k-th answer to its k-th turn; send-to-answer latencies by line."""
    fake = answers.fake
    result = Check()
    latency: dict[int, list[float]] = defaultdict(list)
    sent: defaultdict[str, list[tuple[Turn, float]]] = defaultdict(list)
    for turn, envelope_id in zip(turns, ids, strict=True):
        sent[channel_id(turn.tech)].append((turn, fake.envelope(envelope_id).sent_at))
    for channel in set(sent) | set(answers.by_channel):
        asked, got = sent.get(channel, []), answers.by_channel.get(channel, [])
        result.missing += max(0, len(asked) - len(got))
        result.extra += max(0, len(got) - len(asked))
        for (turn, sent_at), answer in zip(asked, got, strict=False):
            expect = LINES[turn.line].expect.format(i=turn.tech)
            if expect not in answer.text:
                result.wrong += 1
                if len(result.examples) < 3:
                    result.examples.append(f"{channel} turn {turn.line}: {answer.text[:120]!r}")
                continue
            result.answered += 1
            latency[turn.line].append(answer.at - sent_at)
    unreplaced = sum(1 for n in answers.progress.values() if n == 0)
    twice = sum(1 for n in answers.progress.values() if n > 1)
    if unreplaced or twice:
        result.examples.append(
            f"progress lines never replaced: {unreplaced}, replaced twice: {twice}"
        )
        result.wrong += unreplaced + twice
    return result, latency


def peak_per_second(times: list[float]) -> int:
    """The most calls in any one-second window."""
    ordered, best, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class GcPauses:
    """The garbage collector's full (generation 2) collections and how long each stopped us."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._started)

    def describe(self) -> str:
        longest = max(self.pauses, default=0.0) * 1e3
        return f"{len(self.pauses)} full collections, the longest {longest:.0f} ms"


# --- the two phases ------------------------------------------------------------------


async def bare_bolt_phase(fake: FakeSlack, turns: list[Turn], pace: Pace) -> Acks:
    """The same events to a bare bolt app that only acks."""
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    app = AsyncApp(client=client, logger=logging.getLogger("bench.slack.bolt"))

    async def nothing() -> None:
        """Bolt acks an event before running its listener; there is nothing else to do."""

    app.event("message")(nothing)
    handler = AsyncSocketModeHandler(
        app, fake.app_token, web_client=client, ping_interval=PING_INTERVAL
    )
    connections = fake.connections_opened
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        await fake.wait_connected(count=connections + 1)
        await send_all(fake, warm_up_events(), Pace(10))
        cpu0 = cpu_now()
        ids = await send_all(fake, dms(turns), pace)
        return Acks.of(fake, ids, cpu_now() - cpu0)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


@dataclass
class BridgeRun:
    idle: Acks
    """The acks of other bots' messages: the bridge's ack path with no turn beside it."""
    acks: Acks
    check: Check
    latency: dict[int, list[float]]
    answers: Answers
    first_sent: float
    last_answer: float
    floor: float
    """Seconds from the first event until the last turn could be answered at the earliest:
    each technician's tool turns one after the other, from when they were sent."""
    cpu: float
    """CPU seconds of the process from the first event to the last answer."""


def tool_floor(turns: list[Turn], ids: list[str], fake: FakeSlack) -> float:
    """When the last turn could be answered at the earliest, if nothing but the tools took time."""
    done: dict[int, float] = {}
    first = fake.envelope(ids[0]).sent_at
    for turn, envelope_id in zip(turns, ids, strict=True):
        start = max(fake.envelope(envelope_id).sent_at, done.get(turn.tech, 0.0))
        done[turn.tech] = start + LINES[turn.line].tools * SIM_LATENCY_MS / 1000
    return max(done.values()) - first


async def bridge_phase(
    fake: FakeSlack, turns: list[Turn], serials: list[str], pace: Pace, tmp: Path
) -> BridgeRun:
    """The events to the real SlackBridge on TechAssist; wait until every turn is answered."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp / "techassist",
        seed_demo=False,
        sim_latency_ms=SIM_LATENCY_MS,
        log_level="WARNING",
    )
    services = build(settings)
    try:
        services.workorders.import_data(slack_dataset(serials))
        settle_heap()  # as `techassist serve` does at start-up
        bridge = SlackBridge(
            services.orchestrator,
            SlackConfig(
                bot_token=fake.bot_token,
                app_token=fake.app_token,
                api_url=fake.api_url,
                ping_interval=PING_INTERVAL,
                progress_after=PROGRESS_AFTER,
            ),
        )
        connections = fake.connections_opened
        answers = Answers(fake)
        answers.scan()  # skip the baseline's calls
        await bridge.start()
        try:
            await fake.wait_connected(count=connections + 1)
            await send_all(fake, warm_up_events(), Pace(10))
            cpu0 = cpu_now()
            idle_ids = await send_all(fake, other_bot(len(turns), len(serials)), pace)
            idle = Acks.of(fake, idle_ids, cpu_now() - cpu0)
            cpu0 = cpu_now()
            ids = await send_all(fake, dms(turns), pace)
            acks = Acks.of(fake, ids, cpu_now() - cpu0)
            try:
                await wait(fake, lambda: answers.scan() >= len(turns), "every turn's answer")
            except RuntimeError as exc:  # reported with what did arrive
                answers.problems.append(str(exc))
            cpu = cpu_now() - cpu0
        finally:
            await bridge.stop()  # before the fake stops; waits for the turns under way
        answers.scan()
        checked, latency = check(turns, ids, answers)
        answered_at = [a.at for channel in answers.by_channel.values() for a in channel]
        return BridgeRun(
            idle=idle,
            acks=acks,
            check=checked,
            latency=latency,
            answers=answers,
            first_sent=fake.envelope(ids[0]).sent_at,
            last_answer=max(answered_at, default=fake.envelope(ids[0]).sent_at),
            floor=tool_floor(turns, ids, fake),
            cpu=cpu,
        )
    finally:
        await services.aclose()


# --- report --------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float], q: float) -> float:
    return pct(values, q) * 1e3


def report(events: int, technicians: int, pace: Pace, ours: BridgeRun, bolt: Acks) -> bool:
    """Print the figures; whether the target was met and every turn answered exactly once."""
    print(
        f"events: {events} DMs in {technicians} DM channels ({len(LINES)} turns per "
        f"technician, sent round by round), {pace.describe()}"
    )
    slow = sum(1 for line in LINES if line.tools)
    print(
        f"simulator: every operation takes {SIM_LATENCY_MS} ms; {slow} of {len(LINES)} turns "
        f"per technician run two operations; progress line after {PROGRESS_AFTER:g} s"
    )
    columns = (("techassist", ours.acks), ("no turns", ours.idle), ("bare bolt", bolt))
    print(
        f"\n{'ack latency, ms (fake: sent to acked)':38}" + "".join(f"{n:>12}" for n, _ in columns)
    )
    print(f"{'':38}{'(DMs)':>12}{'(bot msgs)':>12}{'(DMs)':>12}{'ours/bolt':>11}")
    for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        cells = "".join(f"{ms(a.latencies, q):12.2f}" for _, a in columns)
        ratio = ms(ours.acks.latencies, q) / ms(bolt.latencies, q)
        print(f"{'  ' + name:38}{cells}{ratio:11.2f}")
    rows: list[tuple[str, Callable[[Acks], str]]] = [
        ("acked", lambda a: f"{len(a.latencies)}"),
        ("redeliveries (acked too late)", lambda a: f"{a.redelivered}"),
        ("first to last envelope sent, s", lambda a: f"{a.sending:.2f}"),
        ("envelopes sent per second", lambda a: f"{len(a.latencies) / a.sending:.0f}"),
        ("CPU, first sent to last acked, s", lambda a: f"{a.cpu:.2f}"),
    ]
    for label, cell in rows:
        print(f"{label:38}" + "".join(f"{cell(a):>12}" for _, a in columns))
    p99 = ms(ours.acks.latencies, 0.99)
    met = p99 <= TARGET_ACK_P99_MS and len(ours.acks.latencies) == events
    verdict = "met" if met else "NOT met"
    print(f"target: ack p99 <= {TARGET_ACK_P99_MS:.0f} ms: {verdict} ({p99:.1f} ms)")

    c = ours.check
    exact = c.exact and c.answered == events
    elapsed = ours.last_answer - ours.first_sent
    rate, busy = (c.answered / elapsed, ours.cpu / elapsed) if elapsed > 0 else (0.0, 0.0)
    print(
        f"\nturns answered exactly once, in order, with the right text: {c.answered}/{events} "
        f"({'yes' if exact else 'NO'}: {c.missing} missing, {c.extra} extra, {c.wrong} wrong)"
    )
    for example in c.examples:
        print(f"  {example}")
    for problem, count in Counter(ours.answers.problems).most_common(5):
        print(f"  x{count}: {problem}")
    print(
        f"{'all' if exact else 'NOT all'} answered; the last answer came {elapsed:.2f} s after "
        f"the first event: {rate:.1f} turns/s (the tools alone would take "
        f"{ours.floor:.2f} s: {events / ours.floor:.1f} turns/s)"
    )
    print(
        f"CPU from the first event to the last answer: {ours.cpu:.2f} s "
        f"({busy:.0%} of one core, {ours.cpu / events * 1e3:.2f} ms per turn, "
        "the fake's share included)"
    )
    print(f"{'send to answer, s':38}{'p50':>8}{'p99':>8}{'max':>8}   tools")
    for n, line in enumerate(LINES):
        values = ours.latency.get(n, [])
        tools = f"{line.tools} x {SIM_LATENCY_MS / 1000:g} s" if line.tools else "none"
        print(
            f"  {line.label:36}{pct(values, 0.5):8.2f}{pct(values, 0.99):8.2f}"
            f"{pct(values, 1.0):8.2f}   {tools}"
        )
    a = ours.answers
    per_channel = max(
        (peak_per_second([x.at for x in channel]) for channel in a.by_channel.values()), default=0
    )
    print(
        f"Web API: {len(a.posts_at)} chat.postMessage ({len(a.progress)} progress lines), "
        f"{len(a.updates_at)} chat.update; in one second at most {peak_per_second(a.posts_at)} "
        f"posts and {peak_per_second(a.updates_at)} updates in the workspace, {per_channel} "
        "answers in one channel (the fake does not rate-limit; Slack would)"
    )
    return met and exact


async def main(events: int, pace: Pace) -> int:
    for name in PROXY_VARIABLES:  # slack_sdk reads them and ignores NO_PROXY
        os.environ.pop(name, None)
    technicians = math.ceil(events / len(LINES))
    serials = good_serials(technicians)
    turns = plan_turns(events, serials)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"slack-bolt {version('slack_bolt')}, slack_sdk {version('slack_sdk')}, "
        f"aiohttp {version('aiohttp')}; the fake Slack, the apps and the sender share one "
        "process and one event loop, on 127.0.0.1"
    )
    with tempfile.TemporaryDirectory(prefix="techassist-bench-slack-") as tmp:
        fake = FakeSlack()
        await fake.start()
        try:
            with GcPauses() as bolt_gc:
                bolt = await bare_bolt_phase(fake, turns, pace)
            with GcPauses() as ours_gc:
                ours = await bridge_phase(fake, turns, serials, pace, Path(tmp))
        finally:
            await fake.stop()
    ok = report(events, technicians, pace, ours, bolt)
    print(
        f"garbage collector (one process for all): {ours_gc.describe()} in the techassist "
        f"phases, {bolt_gc.describe()} in the bare bolt phase"
    )
    return 0 if ok else 1


async def bounded(events: int, pace: Pace) -> int:
    async with asyncio.timeout(RUN_TIMEOUT):
        return await main(events, pace)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000, help="DMs to send (default: 1000)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=50,
        metavar="W",
        help="at most W envelopes unacked at a time; 0: no bound (default: 50)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="R",
        help="at most R envelopes per second, on a fixed schedule (default: 0, as fast as "
        "the fake can)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 events")
    args = parser.parse_args()
    events = 40 if args.quick else max(1, args.events)
    pace = Pace(max(0, args.in_flight), max(0.0, args.rate))
    sys.exit(asyncio.run(bounded(events, pace)))
