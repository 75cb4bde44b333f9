"""Reading technician messages into values, and checking values against parameters."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator_core.params import (
    MASK,
    MAX_MESSAGE_BYTES,
    Invalid,
    Parameter,
    ParamType,
    Valid,
    mask,
    parse_values,
    validate_value,
)

FSAN = Parameter(
    name="fsan",
    prompt="Serial?",
    pattern="^[A-Z]{4}[0-9A-F]{8}$",
    normalize="upper",
    example="ALCL1234ABCD",
)
PORT = Parameter(name="ethernet_port", prompt="Port?", type=ParamType.INTEGER, min=1, max=4)
LEVEL = Parameter(name="rx", prompt="Level?", type=ParamType.NUMBER, min=-30, max=0)
ONLINE = Parameter(name="customer_online", prompt="Online?", type=ParamType.BOOLEAN)
MODEL = Parameter(
    name="model",
    prompt="Model?",
    type=ParamType.CHOICE,
    choices=["G-010G-P", "G-240W-F", "716GE", "XS-010X-Q"],
)
SSID = Parameter(name="ssid", prompt="Name?", min=1, max=32)
PASSWORD = Parameter(name="wifi_password", prompt="Password?", min=8, max=63, sensitive=True)
ALL_PARAMS = [FSAN, PORT, LEVEL, ONLINE, MODEL, SSID, PASSWORD]

# -- parse_values ---------------------------------------------------------------


def test_a_json_object_gives_its_values() -> None:
    """A JSON object is a set of named values, raw."""
    assert parse_values('{"fsan": "ALCL1234ABCD", "ethernet_port": 2}') == {
        "fsan": "ALCL1234ABCD",
        "ethernet_port": 2,
    }


def test_a_python_dict_literal_gives_its_values() -> None:
    """The seed client sent str(dict); it is read with literal_eval, never eval."""
    text = "{'ethernet_port': 2, 'fsan': 'ALCL1234ABCD', 'model': '716GE'}"
    assert parse_values(text) == {"ethernet_port": 2, "fsan": "ALCL1234ABCD", "model": "716GE"}


def test_key_value_pairs_separated_by_spaces_commas_and_semicolons() -> None:
    """key=value pairs may be mixed with any of the three separators."""
    assert parse_values("fsan=ALCL1234ABCD, model=716GE ethernet_port=2;ssid=Home") == {
        "fsan": "ALCL1234ABCD",
        "model": "716GE",
        "ethernet_port": "2",
        "ssid": "Home",
    }


def test_quoted_values_keep_spaces_and_escapes() -> None:
    """Single or double quotes let a value hold spaces, separators and escaped quotes."""
    assert parse_values("""ssid="Smith Family; 5G" wifi_password='it\\'s, secret'""") == {
        "ssid": "Smith Family; 5G",
        "wifi_password": "it's, secret",
    }


def test_keys_are_normalised() -> None:
    """Keys are lower-cased and spaces and dashes become underscores."""
    assert parse_values('{"Ethernet Port": 2, "WIFI-password": "x"}') == {
        "ethernet_port": 2,
        "wifi_password": "x",
    }
    assert parse_values("Ethernet-Port=3") == {"ethernet_port": "3"}


@pytest.mark.parametrize(
    "text",
    [
        "ALCL1234ABCD",
        "yes",
        "",
        "   ",
        "the port is 2",
        "fsan = ",
        "fsan=ALCL1234ABCD and model=716GE",
        "{}",
        "[1, 2]",
        "{1, 2}",
        "{'a': 1",
        "{1: 'a'}",
        "{'a': __import__('os').system('echo no')}",
        "{" * 5000,
        "{'" + "x" * MAX_MESSAGE_BYTES + "': 1}",
    ],
)
def test_plain_answers_and_garbage_give_none(text: str) -> None:
    """Anything that is not clearly a set of named values is a plain answer."""
    assert parse_values(text) is None


def test_invalid_escapes_in_a_dict_literal_do_not_warn() -> None:
    """A message's invalid escape sequences are not our code's warnings (filterwarnings=error)."""
    assert parse_values(r"{'password': 'a\d'}") == {"password": "a\\d"}


@given(st.text())
def test_parse_values_never_raises(text: str) -> None:
    """Any text gives a dict or None."""
    result = parse_values(text)
    assert result is None or isinstance(result, dict)


@given(st.text(alphabet="{}[]()'\"=,;: \\abc012", max_size=60))
def test_parse_values_never_raises_on_syntax_soup(text: str) -> None:
    """Text made mostly of syntax gives a dict or None."""
    result = parse_values(text)
    assert result is None or isinstance(result, dict)


# -- validate_value ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "raw", "expected"),
    [
        (FSAN, " alcl1234abcd ", "ALCL1234ABCD"),
        (PORT, "2", 2),
        (PORT, 2, 2),
        (PORT, 2.0, 2),
        (PORT, " 3 ", 3),
        (PORT, "4.0", 4),
        (LEVEL, "-18.5", -18.5),
        (LEVEL, "-18,5", -18.5),
        (LEVEL, -20, -20.0),
        (LEVEL, "\u221218.5", -18.5),
        (ONLINE, "yes", True),
        (ONLINE, "Y", True),
        (ONLINE, "online", True),
        (ONLINE, "OK!", True),
        (ONLINE, "true", True),
        (ONLINE, 1, True),
        (ONLINE, True, True),
        (ONLINE, "no", False),
        (ONLINE, "N", False),
        (ONLINE, "false", False),
        (ONLINE, "0", False),
        (ONLINE, "offline", False),
        (ONLINE, "Yes, all good", True),
        (ONLINE, "no - not yet", False),
        (MODEL, "716ge", "716GE"),
        (MODEL, "g-240w-f", "G-240W-F"),
        (MODEL, "G240WF", "G-240W-F"),
        (SSID, "  Smith Family  ", "Smith Family"),
        (PASSWORD, "correct horse", "correct horse"),
    ],
)
def test_valid_values_are_coerced(param: Parameter, raw: Any, expected: Any) -> None:
    """Each type accepts what a technician would sensibly type, in its canonical form."""
    result = validate_value(param, raw)
    assert result == Valid(expected)
    assert type(result.value) is type(expected)


@pytest.mark.parametrize(
    ("param", "raw", "reason"),
    [
        (FSAN, "ALCL12", "ALCL12 does not match the expected format."),
        (PORT, "2.5", "2.5 is not a whole number."),
        (PORT, 2.5, "2.5 is not a whole number."),
        (PORT, "two", "two is not a whole number."),
        (PORT, True, "True is not a whole number."),
        (PORT, "7", "7 is not between 1 and 4."),
        (PORT, 0, "0 is not between 1 and 4."),
        (LEVEL, "nan", "nan is not a number."),
        (LEVEL, "1e999", "1e999 is not a number."),
        (LEVEL, "5", "5.0 is not between -30 and 0."),
        (ONLINE, "maybe", "maybe is not a yes or no answer."),
        (ONLINE, 2, "2 is not a yes or no answer."),
        (ONLINE, "yesterday", "yesterday is not a yes or no answer."),
        (MODEL, "G-999", "G-999 is not one of: G-010G-P, G-240W-F, 716GE, XS-010X-Q."),
        (SSID, "x" * 33, "is too long: it may have at most 32 characters."),
        (SSID, ["a"], "['a'] is not text."),
        (FSAN, None, "no value was given."),
        (FSAN, "  ", "no value was given."),
    ],
)
def test_invalid_values_say_why(param: Parameter, raw: Any, reason: str) -> None:
    """A value that does not fit gets a plain, specific reason."""
    result = validate_value(param, raw)
    assert isinstance(result, Invalid)
    assert result.reason.endswith(reason)


def test_minimum_only_and_maximum_only() -> None:
    """A one-sided limit is reported on its own."""
    at_least = Parameter(name="n", prompt="?", type=ParamType.INTEGER, min=1)
    at_most = Parameter(name="n", prompt="?", type=ParamType.INTEGER, max=4)
    assert validate_value(at_least, 0) == Invalid("0 is less than 1.")
    assert validate_value(at_most, 5) == Invalid("5 is more than 4.")


def test_a_sensitive_value_never_appears_in_a_reason() -> None:
    """A rejected password is not echoed back to the chat."""
    result = validate_value(PASSWORD, "hunter2")
    assert result == Invalid("it is too short: it needs at least 8 characters.")
    assert "hunter2" not in result.reason


def test_a_long_value_is_shortened_in_a_reason() -> None:
    """A pasted wall of text is not echoed back whole."""
    result = validate_value(FSAN, "A" * 500)
    assert isinstance(result, Invalid) and len(result.reason) < 100


def test_an_ambiguous_loose_choice_is_rejected() -> None:
    """Loose matching only picks a choice when exactly one fits."""
    param = Parameter(name="c", prompt="?", type=ParamType.CHOICE, choices=["A-1", "A1"])
    assert validate_value(param, "a1") == Valid("A1")
    assert isinstance(validate_value(param, "a 1"), Invalid)


@given(st.sampled_from(ALL_PARAMS), st.text())
def test_validate_value_never_raises_on_text(param: Parameter, raw: str) -> None:
    """Any text gives Valid or Invalid."""
    assert isinstance(validate_value(param, raw), (Valid, Invalid))


@given(
    st.sampled_from(ALL_PARAMS),
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.lists(st.integers())
    | st.dictionaries(st.text(), st.integers()),
)
def test_validate_value_never_raises_on_other_values(param: Parameter, raw: Any) -> None:
    """Whatever a JSON or dict-literal message carries gives Valid or Invalid."""
    assert isinstance(validate_value(param, raw), (Valid, Invalid))


# -- Parameter and mask -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "choice"}, "needs a non-empty 'choices'"),
        ({"type": "choice", "choices": []}, "needs a non-empty 'choices'"),
        ({"pattern": "^[A-Z"}, "invalid regular expression"),
        ({"min": 5, "max": 1}, "greater than 'max'"),
        ({"type": "date"}, "Input should be"),
        ({"normalize": "title"}, "Input should be"),
    ],
)
def test_bad_parameter_definitions_are_rejected(data: dict[str, Any], fragment: str) -> None:
    """A parameter that could never be answered fails validation."""
    with pytest.raises(ValidationError, match=fragment):
        Parameter.model_validate({"name": "p", "prompt": "?", **data})


def test_mask_hides_every_value_the_same_way() -> None:
    """mask() shows the one MASK constant, whatever the value."""
    assert mask("secret") == mask(12345678) == MASK


# -- limits on a structured message -------------------------------------------------


def test_a_message_carries_at_most_64_named_values() -> None:
    """Past the limit a message is a plain answer, and is never parsed as values."""
    assert len(parse_values(" ".join(f"k{i}=1" for i in range(64))) or {}) == 64
    assert parse_values(" ".join(f"k{i}=1" for i in range(65))) is None
    assert parse_values(" ".join("k=1" for _ in range(65))) is None  # repeats count too
    literal = "{" + ", ".join(f"'k{i}': {i}" for i in range(65)) + "}"
    assert parse_values(literal) is None
    assert parse_values(literal.replace("'", '"')) is None


def test_a_message_nests_at_most_32_levels() -> None:
    within = parse_values('{"a": ' + "[" * 31 + "]" * 31 + "}")
    assert within is not None and "a" in within
    assert parse_values('{"a": ' + "[" * 32 + "]" * 32 + "}") is None
    assert parse_values("{'a': " + "(" * 32 + ")" * 32 + "}") is None


def test_brackets_and_colons_inside_quoted_values_do_not_count() -> None:
    text = '{"wifi_password": "' + "[{:," * 100 + '", "ssid": "Home"}'
    assert parse_values(text) == {"wifi_password": "[{:," * 100, "ssid": "Home"}
