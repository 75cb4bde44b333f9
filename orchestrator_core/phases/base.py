"""What every phase is made of: a question, a vocabulary and a handler.

A phase is one thing the conversation waits for (see ``Phase``). Its
``PhaseSpec`` keeps in one place the question that asks for it, the words it
offers and accepts (one list, so the two cannot drift apart) and the handler
that takes the answer and returns the next phase. The orchestrator walks this
table; it holds no conversation logic of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator_core.inner_agent import InnerAgent, ToolResult
from orchestrator_core.plans import Plan, PlanLibrary
from orchestrator_core.session import Phase, Session
from orchestrator_core.texts import listing
from orchestrator_core.turns import Reply


@dataclass(frozen=True)
class Word:
    """One answer a phase offers, and the other ways of saying it that it accepts."""

    choice: str
    synonyms: frozenset[str] = frozenset()

    def says(self, text: str) -> bool:
        return text == self.choice or text in self.synonyms


class Vocabulary:
    """A phase's answers: what it offers (``choices``) and what it accepts (``match``)."""

    def __init__(self, *words: Word) -> None:
        self.words = words

    @property
    def choices(self) -> list[str]:
        return [word.choice for word in self.words]

    def match(self, text: str, offered: Iterable[str] | None = None) -> str | None:
        """The choice ``text`` means, among ``offered`` (default: all), or ``None``."""
        said = " ".join(text.strip().lower().split())
        allowed = set(self.choices if offered is None else offered)
        for word in self.words:
            if word.choice in allowed and word.says(said):
                return word.choice
        return None


def words(**synonyms: Sequence[str]) -> Vocabulary:
    """A vocabulary from ``choice=[synonyms]``; an underscore in a choice is a space."""
    return Vocabulary(*(Word(name.replace("_", " "), frozenset(s)) for name, s in synonyms.items()))


def unclear(choices: Sequence[str]) -> Reply:
    """The reply to an answer the phase does not understand."""
    return Reply.display(f"Please answer {listing([f'“{c}”' for c in choices])}.")


@dataclass(frozen=True)
class Next:
    """What a handler returns: the phase the conversation goes to, and what it says first."""

    phase: Phase
    said: list[Reply] = field(default_factory=list)

    def after(self, said: Sequence[Reply]) -> Next:
        """The same next phase, with ``said`` in front."""
        return Next(self.phase, [*said, *self.said])


class Services(Protocol):
    """What handlers reach the world through; the ``Orchestrator`` is the one implementation."""

    plans: PlanLibrary
    agent: InnerAgent

    async def tool(
        self,
        session: Session,
        tool: str,
        args: dict[str, Any],
        *,
        step_id: str,
        order_id: str | None = None,
        sensitive: frozenset[str] = frozenset(),
    ) -> ToolResult: ...

    async def start_plan(self, session: Session, plan: Plan) -> None: ...

    async def progress(self, text: str) -> None: ...

    async def resume_plan(
        self, session: Session, digest: str, fallback: Plan | None
    ) -> Plan | None:
        """Attach the plan snapshot ``digest`` again (``fallback`` if it is gone); the plan."""
        ...

    async def escalated(self, escalation_id: str) -> None:
        """An escalation was recorded: tell whoever listens (the dispatch channel)."""
        ...


Handler = Callable[[Services, Session, str], Awaitable[Next]]
Question = Callable[[Session], Reply]


@dataclass(frozen=True)
class PhaseSpec:
    """One row of the conversation's table: how a phase asks, what it accepts, what it does."""

    phase: Phase
    question: Question
    handle: Handler
    vocabulary: Vocabulary | None = None
    """The fixed answers the phase offers; ``None`` where it takes free text or a value."""
