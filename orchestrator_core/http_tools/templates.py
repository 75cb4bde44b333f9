"""Filling a declared tool's request from its inputs, and reading its response.

URL path values are percent-encoded, so an input can never change the path's
shape (``../admin``) or add a query. In a body, a string that is exactly one
``{name}`` becomes the input's typed value; other strings are filled as text.
JSON Pointers follow RFC 6901.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

_WHOLE = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_FIELD = re.compile(r"\{([a-z][a-z0-9_]*)\}|\{\{|\}\}")


def as_text(value: Any) -> str:
    """An input as it reads in a URL or in text: booleans as JSON writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fill_text(template: str, values: Mapping[str, Any], encode: bool = False) -> str:
    """A template with each ``{name}`` replaced (percent-encoded when ``encode``)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]  # {{ or }}: a literal brace
        text = as_text(values[name])
        return quote(text, safe="") if encode else text

    return _FIELD.sub(one, template)


def fill_url(url: str, values: Mapping[str, Any]) -> str:
    """The URL with its path filled; the scheme and host are fixed by the file."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=fill_text(parts.path, values, encode=True)))


def fill_query(query: Mapping[str, str], values: Mapping[str, Any]) -> dict[str, str]:
    """The query values; one that is a single input left out (``None``) is dropped."""
    filled: dict[str, str] = {}
    for key, template in query.items():
        whole = _WHOLE.fullmatch(template)
        if whole and values.get(whole.group(1)) is None:
            continue
        filled[key] = fill_text(template, values)
    return filled


def fill_body(template: Any, values: Mapping[str, Any]) -> Any:
    """The JSON body: ``"{name}"`` alone becomes the typed value, other strings are text."""
    if isinstance(template, str):
        whole = _WHOLE.fullmatch(template)
        return values[whole.group(1)] if whole else fill_text(template, values)
    if isinstance(template, dict):
        return {key: fill_body(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [fill_body(item, values) for item in template]
    return template


class PointerMissing(LookupError):
    """A JSON Pointer names nothing in the document."""


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` (RFC 6901) names in ``document``; PointerMissing if none."""
    if pointer == "":
        return document
    current = document
    for token in pointer[1:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and re.fullmatch(r"0|[1-9][0-9]*", key):
            index = int(key)
            if index >= len(current):
                raise PointerMissing(pointer)
            current = current[index]
        else:
            raise PointerMissing(pointer)
    return current


__all__ = [
    "PointerMissing",
    "as_text",
    "fill_body",
    "fill_query",
    "fill_text",
    "fill_url",
    "resolve",
]
