"""Turn what a technician types into parameter values, and check a value against its definition.

Nothing here raises on bad input: a message that is not a set of named values
is a plain answer (``None``), and a value that does not fit is ``Invalid`` with
a reason a technician can act on.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator_core import patterns

MASK = "••••"
"""What a sensitive value is shown as, everywhere."""

MAX_MESSAGE_BYTES = 8 * 1024
"""Longer messages are never parsed as named values: no one types that much by hand."""
MAX_KEYS = 64
"""A message with more named values (keys, at any depth) is a plain answer, never parsed."""
MAX_ITEMS = 256
"""A structured message with more items (keys, list items, brackets) is never parsed."""
MAX_DEPTH = 32
"""A structured message nested deeper than this is never parsed."""

_SHOWN_CHARS = 40

_TRUE_WORDS = frozenset(
    {
        "yes",
        "y",
        "yeah",
        "yep",
        "yup",
        "true",
        "t",
        "1",
        "ok",
        "okay",
        "online",
        "on",
        "up",
        "done",
        "confirmed",
        "correct",
        "affirmative",
        "sure",
        "good",
        "working",
        "happy",
        "all good",
    }
)
_FALSE_WORDS = frozenset(
    {
        "no",
        "n",
        "nope",
        "nah",
        "false",
        "f",
        "0",
        "offline",
        "off",
        "down",
        "not ok",
        "not online",
        "not working",
        "negative",
        "not happy",
        "bad",
    }
)

# A reply that starts with one of these ("yes, all good", "no, not yet") means it.
_LEADING_WORDS = {
    "yes": True,
    "y": True,
    "yeah": True,
    "yep": True,
    "yup": True,
    "no": False,
    "n": False,
    "nope": False,
    "nah": False,
}

_KEY = r"[A-Za-z_][A-Za-z0-9_\-]*"
_PAIR = re.compile(
    rf"""(?P<key>{_KEY})\s*=\s*
        (?:"(?P<dq>(?:[^"\\]|\\.)*)"
          |'(?P<sq>(?:[^'\\]|\\.)*)'
          |(?P<bare>[^\s,;"']+))""",
    re.VERBOSE | re.DOTALL,
)
_SEPARATORS = re.compile(r"[\s,;]*")
# A quoted string, JSON's or Python's. An unclosed one runs to the end of the
# text, so that no attempt ever fails and backtracks: every character is read once.
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)' + r"|'(?:[^'\\]|\\.)*(?:'|\\?\Z)", re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\](){}]+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class ParamType(str, Enum):
    """What kind of value a parameter holds."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"


class Parameter(BaseModel):
    """One value a plan asks the technician for, and what makes it acceptable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Filled from the key in the plan's 'parameters' when omitted.")
    prompt: str = Field(min_length=1, description="The question the technician sees.")
    label: str | None = Field(
        default=None,
        description="What the value is called in a sentence, like \"the replacement ONT's "
        'serial"; the name with spaces when omitted.',
    )
    type: ParamType = ParamType.STRING
    pattern: str | None = Field(
        default=None,
        description="A regular expression (RE2 syntax) the whole (normalized) string must match.",
    )
    min: float | None = Field(
        default=None, description="Smallest number, or shortest string length."
    )
    max: float | None = Field(default=None, description="Largest number, or longest string length.")
    choices: list[str] | None = Field(
        default=None, description="The allowed answers of a 'choice' parameter."
    )
    example: str | None = Field(default=None, description="Shown when an answer does not fit.")
    sensitive: bool = Field(default=False, description="Masked in every view and log.")
    normalize: Literal["upper", "lower"] | None = Field(
        default=None, description="Case applied to a string before it is checked."
    )

    @property
    def title(self) -> str:
        """What the value is called in a sentence."""
        return self.label or self.name.replace("_", " ")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                patterns.compile_pattern(pattern)
            except patterns.PatternError as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type is ParamType.CHOICE and not self.choices:
            raise ValueError("a 'choice' parameter needs a non-empty 'choices' list")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"'min' ({self.min:g}) is greater than 'max' ({self.max:g})")
        return self


@dataclass(frozen=True, slots=True)
class Valid:
    """A value that fits its parameter, already coerced to the parameter's type."""

    value: Any


@dataclass(frozen=True, slots=True)
class Invalid:
    """A value that does not fit; ``reason`` says why in plain words, without the example."""

    reason: str


def mask(value: Any) -> str:
    """What to show instead of a sensitive value."""
    return MASK


def normalize_key(key: str) -> str:
    """The canonical form of a value name: lower case, spaces and dashes become underscores."""
    return re.sub(r"[\s\-]+", "_", key.strip().lower())


def parse_values(text: str) -> dict[str, Any] | None:
    """The named values a message carries, raw, or ``None`` when it is a plain answer.

    Understands a JSON object, a Python dict literal (``{'fsan': 'ALCL1234ABCD'}``,
    read with ``ast.literal_eval``) and ``key=value`` pairs separated by spaces,
    commas or semicolons, with optionally quoted values. Even one pair counts:
    callers should treat a result whose names they do not know as a plain answer.
    """
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    if not stripped or len(stripped.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        return None
    if stripped.startswith("{"):
        return _named(_parse_mapping(stripped)) if _small_structure(stripped) else None
    return _named(_parse_pairs(stripped))


def _small_structure(text: str) -> bool:
    """Whether a would-be mapping is small and shallow enough to be worth parsing.

    A cheap scan, linear in the text, before any parser runs: parsing costs
    grow with the items (an 8 KB dict literal of 700 keys takes milliseconds
    with ``ast.literal_eval``) and deep nesting reaches the recursion limit.
    Quoted strings are dropped first, so brackets or colons inside a value
    count for nothing.
    """
    skeleton = _QUOTED.sub("", text)
    if skeleton.count(":") > MAX_KEYS:
        return False
    brackets = _NOT_BRACKET.sub("", skeleton)
    if skeleton.count(",") + len(brackets) // 2 > MAX_ITEMS:
        return False
    depth = 0
    for char in brackets:
        depth += 1 if char in "{[(" else -1
        if not 0 <= depth <= MAX_DEPTH:
            return False
    return True


def _parse_mapping(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        # Invalid escapes in a string literal warn at compile time; a message is
        # not our code, so its warnings are noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return None


def _parse_pairs(text: str) -> dict[str, Any] | None:
    pairs: dict[str, Any] = {}
    position = 0
    for _ in range(MAX_KEYS + 1):
        if position >= len(text):
            return pairs
        match = _PAIR.match(text, position)
        if match is None:
            return None
        quoted = match.group("dq") if match.group("dq") is not None else match.group("sq")
        value = _ESCAPE.sub(r"\1", quoted) if quoted is not None else match.group("bare")
        pairs[match.group("key")] = value
        position = match.end()
        separator = _SEPARATORS.match(text, position)
        assert separator is not None  # `*` always matches
        if separator.end() == position and position < len(text):
            return None  # `a=1b=2`: pairs must be separated
        position = separator.end()
    return None  # more than MAX_KEYS pairs: no one types that many


def _named(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict) or not data:
        return None
    named: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            return None
        name = normalize_key(key)
        if not name:
            return None
        named[name] = value
    return named


def validate_value(param: Parameter, raw: Any) -> Valid | Invalid:
    """Coerce ``raw`` to ``param``'s type and check its limits; never raises."""
    try:
        return _validate(param, raw)
    except Exception:  # noqa: BLE001 - the contract is "never raises", whatever comes in
        return Invalid("it could not be read.")


def _validate(param: Parameter, raw: Any) -> Valid | Invalid:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return Invalid("no value was given.")
    if param.type is ParamType.INTEGER:
        return _check_range(param, _to_integer(param, raw))
    if param.type is ParamType.NUMBER:
        return _check_range(param, _to_number(param, raw))
    if param.type is ParamType.BOOLEAN:
        return _to_boolean(param, raw)
    if param.type is ParamType.CHOICE:
        return _to_choice(param, raw)
    return _to_string(param, raw)


def _shown(param: Parameter, raw: Any) -> str:
    # The orchestrator puts a reason after "That <name> isn't valid: ", so a
    # hidden value reads as "it".
    if param.sensitive:
        return "it"
    text = raw.strip() if isinstance(raw, str) else repr(raw)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 1] + "…"
    return text


def _to_integer(param: Parameter, raw: Any) -> Valid | Invalid:
    not_whole = Invalid(f"{_shown(param, raw)} is not a whole number.")
    if isinstance(raw, bool):
        return not_whole
    if isinstance(raw, int):
        return Valid(raw)
    if isinstance(raw, str):
        try:
            return Valid(int(raw.strip()))  # exact, even beyond a float's precision
        except ValueError:
            pass
    number = _to_number(param, raw)
    if isinstance(number, Invalid):
        return not_whole
    value = float(number.value)
    if not value.is_integer():
        return not_whole
    return Valid(int(value))


def _to_number(param: Parameter, raw: Any) -> Valid | Invalid:
    not_number = Invalid(f"{_shown(param, raw)} is not a number.")
    if isinstance(raw, bool):
        return not_number
    if isinstance(raw, int):
        try:
            return Valid(float(raw))
        except OverflowError:
            return not_number
    if isinstance(raw, float):
        return Valid(raw) if math.isfinite(raw) else not_number
    if not isinstance(raw, str):
        return not_number
    text = raw.strip().replace("\u2212", "-")  # a typographic minus, from phones
    if "," in text and "." not in text and text.count(",") == 1:
        text = text.replace(",", ".")  # a decimal comma, as many locales write it
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return not_number
    return Valid(value) if math.isfinite(value) else not_number


def _check_range(param: Parameter, result: Valid | Invalid) -> Valid | Invalid:
    if isinstance(result, Invalid):
        return result
    value = result.value
    shown = _shown(param, value)
    if param.min is not None and param.max is not None and not param.min <= value <= param.max:
        return Invalid(f"{shown} is not between {_bound(param.min)} and {_bound(param.max)}.")
    if param.min is not None and value < param.min:
        return Invalid(f"{shown} is less than {_bound(param.min)}.")
    if param.max is not None and value > param.max:
        return Invalid(f"{shown} is more than {_bound(param.max)}.")
    return result


def _bound(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _to_boolean(param: Parameter, raw: Any) -> Valid | Invalid:
    if isinstance(raw, bool):
        return Valid(raw)
    if isinstance(raw, int) and raw in (0, 1):
        return Valid(bool(raw))
    if isinstance(raw, str):
        word = " ".join(raw.strip().lower().rstrip(".!").split())
        if word in _TRUE_WORDS:
            return Valid(True)
        if word in _FALSE_WORDS:
            return Valid(False)
        first = re.split(r"[\s,;:.!-]+", word, maxsplit=1)[0]
        if first in _LEADING_WORDS:
            return Valid(_LEADING_WORDS[first])
    return Invalid(f"{_shown(param, raw)} is not a yes or no answer.")


def _loose(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).casefold()


def _to_choice(param: Parameter, raw: Any) -> Valid | Invalid:
    choices = param.choices or []
    if isinstance(raw, (str, int)) and not isinstance(raw, bool):
        text = str(raw).strip()
        for compare in (str.casefold, _loose):
            # Exact-but-for-case wins over loose matching, and a loose match
            # only counts when it is unambiguous.
            matches = [choice for choice in choices if compare(choice) == compare(text)]
            if len(matches) == 1:
                return Valid(matches[0])
    listed = ", ".join(choices)
    return Invalid(f"{_shown(param, raw)} is not one of: {listed}.")


def _to_string(param: Parameter, raw: Any) -> Valid | Invalid:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return Invalid(f"{_shown(param, raw)} is not text.")
    text = raw.strip() if isinstance(raw, str) else str(raw)
    if param.normalize == "upper":
        text = text.upper()
    elif param.normalize == "lower":
        text = text.lower()
    shown = _shown(param, text)
    if param.min is not None and len(text) < param.min:
        return Invalid(f"{shown} is too short: it needs at least {_bound(param.min)} characters.")
    if param.max is not None and len(text) > param.max:
        return Invalid(f"{shown} is too long: it may have at most {_bound(param.max)} characters.")
    if param.pattern is not None and not patterns.fullmatch(param.pattern, text):
        return Invalid(f"{shown} does not match the expected format.")
    return Valid(text)
