"""Benchmark: Slack events through the project's fake Slack while every tool takes 2 s.

Run ``python -m bench.slack [--events N] [--in-flight W] [--rate R] [--quick]``.
This process plays Slack: it runs ``tests.fake_slack.FakeSlack`` on 127.0.0.1,
sends the events and records when each envelope went out and when its ack came
back. The apps under test run in their own processes, as they would against
the real Slack, which runs elsewhere:

- TechAssist is the real ``techassist serve`` (``python -m bot.cli serve``) with
  Slack's two tokens and ``TECHASSIST_SLACK_API_URL`` pointing at the fake, on a
  temporary data directory that ``techassist orders import`` filled with a
  synthetic dataset (one technician with a Slack user id, one installation
  order and one good ONT per DM channel), and ``TECHASSIST_SIM_LATENCY_MS=2000``:
  every simulator operation takes 2 s.
- The baseline is a bare slack-bolt ``AsyncApp`` with an ``AsyncSocketModeHandler``
  (``bench.bolt_app``) whose only listener does nothing (bolt acks events itself),
  on a fake of its own, before TechAssist starts: the two never run at once.

N direct messages go out as fast as the fake sends them, with at most W
envelopes unacked at a time (with ``--rate``, also at most R per second): four
turns per technician (hi; yes; the ONT's serial, model and port, which
activates the ONT and reads its light levels; the Wi-Fi values, which configure
the Wi-Fi and run the speed test), sent round by round over all the DM
channels, so half the turns run two 2-second simulator operations and the
other turns of a channel queue behind them. The same N events go to the bare
bolt app, so the bridge's ack latency is printed next to bolt's own, as a
ratio. Before its DMs TechAssist also gets N messages from another bot, which
it acks and ignores: its ack path without any turn running beside it.

Each turn must be answered by exactly one message (a post, or the update of the
turn's progress line), in order, saying what that turn should say.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.core import SCRIPT, dataset, good_serials, pct
from bench.processes import child, cpu_seconds, import_orders
from tests.fake_slack import FakeSlack, bot_message, message_im

ROOT = Path(__file__).resolve().parents[1]
SIM_LATENCY_MS = 2000
TARGET_ACK_P99_MS = 50.0
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
"""slack_sdk reads them (for the Web API and the socket) and ignores NO_PROXY."""
#: Bounds: the whole run, an app's start-up and stop, one phase's wait for acks or answers.
RUN_TIMEOUT = 600.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
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
    cpu: Cpu
    """CPU seconds of the app's process and of this one while the phase sent and was acked."""

    @classmethod
    def of(cls, fake: FakeSlack, ids: list[str], cpu: Cpu) -> Acks:
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


# --- the apps' processes, and CPU ---------------------------------------------------


def cpu_self() -> float:
    """CPU seconds this process (the fake Slack and the sender) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Cpu:
    """CPU seconds over one stretch of a phase: the app's process, and the fake's (this one)."""

    app: float
    fake: float


@dataclass
class App:
    """An app under test, running in its own process."""

    name: str
    proc: asyncio.subprocess.Process
    log: Path

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def problems(self) -> list[str]:
        """What it wrote to stderr: both apps log at WARNING and above only, so any line is
        something to look at."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if line.strip()]


class Meter:
    """CPU used by the app and by this process since ``start``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.start()

    def start(self) -> None:
        self._app0, self._fake0 = self.app.cpu_seconds(), cpu_self()

    def read(self) -> Cpu:
        return Cpu(self.app.cpu_seconds() - self._app0, cpu_self() - self._fake0)


def app_env(fake: FakeSlack, **settings: str) -> dict[str, str]:
    """An app's environment: ours without proxies, Slack tokens or TECHASSIST_ settings,
    plus the fake's tokens and ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TECHASSIST_", "SLACK_")) and k not in PROXY_VARIABLES
    }
    env.update(
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_APP_TOKEN=fake.app_token,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **settings,
    )
    return env


@asynccontextmanager
async def running(
    name: str, argv: list[str], env: dict[str, str], marker: bytes, fake: FakeSlack, tmp: Path
) -> AsyncIterator[App]:
    """Start an app's process, wait until it says it is ready and its socket is open on
    ``fake``; always stop it (SIGTERM, then SIGKILL after STOP_TIMEOUT)."""
    log = tmp / f"{name.replace(' ', '-')}.log"
    async with child(
        argv,
        env=env,
        cwd=tmp,
        log=log,
        ready=lambda line: True if marker in line else None,
        start_timeout=START_TIMEOUT,
        stop_timeout=STOP_TIMEOUT,
    ) as (proc, _):
        try:
            await fake.wait_connected(count=1, timeout=START_TIMEOUT)
        except AssertionError as exc:
            tail = log.read_text(errors="replace")[-2000:]
            first = str(exc).splitlines()[0]
            raise RuntimeError(f"{name} did not connect: {first}\n{tail}") from exc
        yield App(name, proc, log)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process (the fake Slack) while a phase runs.

    This process is the measuring instrument: a full collection of its records
    (13-54 ms were seen) would be counted as ack latency of the app under test.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --- the two apps --------------------------------------------------------------------


async def bare_bolt_phase(turns: list[Turn], pace: Pace, tmp: Path) -> Acks:
    """The events to a bare bolt app that only acks, in its own process, on its own fake."""
    async with FakeSlack() as fake:
        argv = [sys.executable, "-m", "bench.bolt_app", "--api-url", fake.api_url]
        argv += ["--ping-interval", str(PING_INTERVAL)]
        env = app_env(fake)
        async with running("bare bolt", argv, env, b"bare bolt connected", fake, tmp) as app:
            await send_all(fake, warm_up_events(), Pace(10))
            meter = Meter(app)
            ids = await send_all(fake, dms(turns), pace)
            acks = Acks.of(fake, ids, meter.read())
            problems = app.problems()
        if problems:
            raise RuntimeError("the bare bolt app logged:\n" + "\n".join(problems[:20]))
        return acks


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
    cpu: Cpu
    """CPU seconds from the first event to the last answer."""
    problems: list[str]
    """What ``techassist serve`` logged at WARNING or above."""


def tool_floor(turns: list[Turn], ids: list[str], fake: FakeSlack) -> float:
    """When the last turn could be answered at the earliest, if nothing but the tools took time."""
    done: dict[int, float] = {}
    first = fake.envelope(ids[0]).sent_at
    for turn, envelope_id in zip(turns, ids, strict=True):
        start = max(fake.envelope(envelope_id).sent_at, done.get(turn.tech, 0.0))
        done[turn.tech] = start + LINES[turn.line].tools * SIM_LATENCY_MS / 1000
    return max(done.values()) - first


async def techassist_phase(
    turns: list[Turn], serials: list[str], pace: Pace, tmp: Path
) -> BridgeRun:
    """The events to ``techassist serve``; wait until every turn is answered."""
    async with FakeSlack() as fake:
        env = app_env(
            fake,
            TECHASSIST_DATA_DIR=str(tmp / "techassist"),
            TECHASSIST_SEED_DEMO="false",
            TECHASSIST_LOG_LEVEL="WARNING",
            TECHASSIST_SIM_LATENCY_MS=str(SIM_LATENCY_MS),
            TECHASSIST_SLACK_API_URL=fake.api_url,
            TECHASSIST_SLACK_PING_INTERVAL=str(PING_INTERVAL),
            TECHASSIST_SLACK_PROGRESS_AFTER=str(PROGRESS_AFTER),
        )
        import_orders(slack_dataset(serials), env=env, cwd=tmp, timeout=START_TIMEOUT)
        argv = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
        answers = Answers(fake)
        async with running("techassist", argv, env, b"TechAssist listening on", fake, tmp) as app:
            await send_all(fake, warm_up_events(), Pace(10))
            meter = Meter(app)
            idle_ids = await send_all(fake, other_bot(len(turns), len(serials)), pace)
            idle = Acks.of(fake, idle_ids, meter.read())
            meter.start()
            ids = await send_all(fake, dms(turns), pace)
            acks = Acks.of(fake, ids, meter.read())
            try:
                await wait(fake, lambda: answers.scan() >= len(turns), "every turn's answer")
            except RuntimeError as exc:  # reported with what did arrive
                answers.problems.append(str(exc))
            cpu = meter.read()
            problems = app.problems()
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
            problems=problems,
        )


# --- report --------------------------------------------------------------------------


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
        ("app's CPU, first sent to last acked, s", lambda a: f"{a.cpu.app:.2f}"),
        ("fake's CPU, same stretch, s", lambda a: f"{a.cpu.fake:.2f}"),
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
    rate, busy = (c.answered / elapsed, ours.cpu.app / elapsed) if elapsed > 0 else (0.0, 0.0)
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
        f"CPU from the first event to the last answer: techassist serve {ours.cpu.app:.2f} s "
        f"({busy:.0%} of one core, {ours.cpu.app / events * 1e3:.2f} ms per turn), "
        f"the fake Slack {ours.cpu.fake:.2f} s"
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
    for problem in ours.problems[:5]:
        print(f"techassist serve logged: {problem[:200]}")
    if len(ours.problems) > 5:
        print(f"... and {len(ours.problems) - 5} more lines")
    return met and exact and not ours.problems


async def main(events: int, pace: Pace) -> int:
    technicians = math.ceil(events / len(LINES))
    serials = good_serials(technicians)
    turns = plan_turns(events, serials)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"slack-bolt {version('slack_bolt')}, slack_sdk {version('slack_sdk')}, "
        f"aiohttp {version('aiohttp')}; this process is Slack (the fake, the sender, the ack "
        "records), each app runs in its own process, one after the other, on 127.0.0.1"
    )
    print(
        "garbage collector: both apps freeze their start-up heap (gc.freeze); off in this "
        "process while a phase runs"
    )
    with tempfile.TemporaryDirectory(prefix="techassist-bench-slack-") as tmp:
        with collector_paused():
            bolt = await bare_bolt_phase(turns, pace, Path(tmp))
        with collector_paused():
            ours = await techassist_phase(turns, serials, pace, Path(tmp))
    return 0 if report(events, technicians, pace, ours, bolt) else 1


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
