"""Sealing values a plan marks sensitive while a session holds them.

A session keeps a sensitive value (the customer's Wi-Fi password) only until the
step that needs it is done; while it is kept, the stored session holds it sealed
(``SessionManager`` seals on save and opens on load). ``Secrets`` is what the core
needs; ``FernetSecrets`` is the implementation ``bot/wiring.py`` passes in, with
keys from ``TECHASSIST_SECRET_KEY`` or a key file in the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from orchestrator_core.errors import TechAssistError


class SecretUnreadable(TechAssistError):
    """A sealed value cannot be opened: sealed with a key that is no longer configured."""


class Secrets(Protocol):
    """Seals and opens text; ``open`` raises ``SecretUnreadable`` for what it cannot open."""

    def seal(self, value: str) -> str: ...

    def open(self, sealed: str) -> str: ...


class FernetSecrets:
    """Fernet (AES-128-CBC with HMAC-SHA256) over one or more keys, newest first.

    New values are sealed with the first key; any of the keys opens a value, so a
    key is rotated by putting the new one first and dropping the old one once the
    sessions sealed with it have moved on (a value is kept only for one step).
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ValueError("FernetSecrets needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._newest = base64.urlsafe_b64decode(keys[0])

    def derive(self, purpose: str) -> bytes:
        """A key for ``purpose`` (an HMAC key, say) derived from the newest key: the same on
        every instance that shares the secret key, and telling nothing about it."""
        return hmac.new(self._newest, purpose.encode(), hashlib.sha256).digest()

    @staticmethod
    def new_key() -> str:
        """A fresh random key, as Fernet's URL-safe base64 text."""
        return Fernet.generate_key().decode()

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, UnicodeDecodeError) as exc:
            raise SecretUnreadable(
                "a sealed value cannot be opened with the configured keys"
            ) from exc


def valid_key(key: str) -> bool:
    """Whether ``key`` is a usable Fernet key (32 bytes, URL-safe base64)."""
    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


__all__ = ["FernetSecrets", "SecretUnreadable", "Secrets", "valid_key"]
