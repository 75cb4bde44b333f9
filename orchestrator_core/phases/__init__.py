"""The conversation as a table of phases, each with its question, vocabulary and handler.

``PHASES`` maps every ``Phase`` to its ``PhaseSpec``. The seed's entry points
live here as the phases' own: ``run_task`` (identify, fetch and prioritise,
confirm, load the plan), ``execute_plan_steps`` (collect, check, run the tool,
store the outputs) and ``post_task_interaction`` (next, help, end).
"""

from __future__ import annotations

from types import MappingProxyType

from orchestrator_core.phases import failure, handback, orders, post_task, steps
from orchestrator_core.phases.base import Next, PhaseSpec, Services, Vocabulary, Word
from orchestrator_core.phases.orders import run_task
from orchestrator_core.phases.post_task import post_task_interaction
from orchestrator_core.phases.steps import execute_plan_steps
from orchestrator_core.session import Phase

_SPECS = [*orders.SPECS, *steps.SPECS, *failure.SPECS, *post_task.SPECS, *handback.SPECS]
PHASES = MappingProxyType({spec.phase: spec for spec in _SPECS})
"""Every phase's spec; a phase missing here is a bug caught at import."""

_missing = set(Phase) - set(PHASES)
if _missing or len(_SPECS) != len(PHASES):
    raise RuntimeError(f"phases without exactly one spec: {sorted(p.value for p in _missing)}")

__all__ = [
    "PHASES",
    "Next",
    "PhaseSpec",
    "Services",
    "Vocabulary",
    "Word",
    "execute_plan_steps",
    "post_task_interaction",
    "run_task",
]
