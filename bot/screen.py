"""What a terminal shows: a message and its choices, and on request the data behind it.

``techassist chat`` and the websocket client (``techassist client``, ``client.py``)
both render with these, so the two look alike. Nothing here imports TechAssist's
server side: ``client.py`` runs with the websockets library alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Words that read better in capitals than as a snake_case key's part.
_ACRONYMS = {"id": "ID", "ont": "ONT", "fsan": "FSAN", "ssid": "SSID", "cuid": "CUID"}
_ACRONYMS |= {"url": "URL", "ip": "IP", "wifi": "Wi-Fi", "dbm": "dBm", "rx": "RX", "tx": "TX"}


def screen(message: str, choices: Sequence[str] = ()) -> str:
    """A message, then the answers it accepts: ``  [yes | no]``."""
    lines = [message]
    if choices:
        lines.append("  [" + " | ".join(str(c) for c in choices) + "]")
    return "\n".join(lines)


def label(key: str) -> str:
    """A snake_case key as a label: ``order_id`` -> ``Order ID``."""
    words = [_ACRONYMS.get(w.lower(), w) for w in str(key).split("_") if w]
    if not words:
        return str(key)
    first = words[0]
    words[0] = first if first in _ACRONYMS.values() else first[:1].upper() + first[1:]
    return " ".join(words)


def scalar(value: Any) -> str:
    """One value as a technician reads it: booleans as yes/no, lists comma-joined."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(scalar(v) for v in value if v is not None)
    return str(value)


def details(data: Any, indent: str = "") -> list[str]:
    """Structured data as indented ``Label: value`` lines; ``None`` and empty values left out.

    A mapping inside a mapping becomes a heading with its lines indented under it; a
    list of mappings becomes a numbered block per item.
    """
    lines: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if _empty(value):
                continue
            if isinstance(value, Mapping):
                lines.append(f"{indent}{label(key)}:")
                lines += details(value, indent + "  ")
            elif _records(value):
                lines.append(f"{indent}{label(key)}:")
                lines += _numbered(value, indent + "  ")
            else:
                lines.append(f"{indent}{label(key)}: {scalar(value)}")
    elif _records(data):
        lines += _numbered(data, indent)
    elif not _empty(data):
        lines.append(f"{indent}{scalar(data)}")
    return lines


def _numbered(items: Sequence[Any], indent: str) -> list[str]:
    lines: list[str] = []
    for number, item in enumerate(items, 1):
        inner = details(item, indent + "   ")
        if inner:
            lines.append(f"{indent}{number}. {inner[0].lstrip()}")
            lines += inner[1:]
    return lines


def _records(value: Any) -> bool:
    return isinstance(value, list | tuple) and any(isinstance(v, Mapping) for v in value)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | list | tuple | str) and not value)
