"""The regular expressions plans give for their parameters, run by Google's RE2.

A plan's ``pattern`` is matched against whatever a technician types. Python's
``re`` backtracks, so a pattern like ``^(a+)+$`` or ``^(a|a)*$`` takes
exponential time on a short hostile answer and would hold the event loop.
RE2 runs in time linear in the text, whatever the pattern; the price is that
it refuses what needs backtracking (backreferences like ``\\1``, lookarounds
like ``(?=...)``, possessive quantifiers), so such a pattern is a plan problem.

RE2 also reads ``\\d``, ``\\w`` and ``\\s`` as ASCII only: a full-width digit
is no digit here, which suits serial numbers and codes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

# What RE2 may use to compile one pattern; a pattern that needs more is refused.
_MAX_MEMORY = 4 << 20
# How RE2 words its refusal of what only a backtracking engine can do.
_NEEDS_BACKTRACKING = (
    "invalid perl operator",
    "invalid escape sequence",
    "bad repetition operator",
)


class PatternError(ValueError):
    """A pattern RE2 cannot take; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported by us, not on stderr
    options.max_mem = _MAX_MEMORY
    return options


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 regular expression; raises ``PatternError`` if RE2 refuses it."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        if str(reason).startswith(_NEEDS_BACKTRACKING):
            reason = (
                f"{reason} (patterns run on RE2: no backreferences, lookarounds or possessives)"
            )
        raise PatternError(str(reason)) from None
    except UnicodeEncodeError:
        raise PatternError("the pattern is not valid Unicode text") from None


def fullmatch(pattern: str, text: str) -> bool:
    """Whether the whole of ``text`` matches ``pattern``, in time linear in the text."""
    try:
        return compile_pattern(pattern).fullmatch(text) is not None
    except UnicodeEncodeError:  # a lone surrogate matches no pattern
        return False
