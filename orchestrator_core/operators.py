"""Dispatchers' accounts for the console: names and argon2 password hashes.

The hashes live in the work-order database (``WorkOrders.put_operator``), so every
instance signs in the same operators. Hashing is deliberately slow (argon2id with
argon2-cffi's defaults), so it runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from typing import TYPE_CHECKING

from orchestrator_core.errors import WorkOrderError
from orchestrator_core.workorders import WorkOrders

if TYPE_CHECKING:  # imported where used: only the console and the CLI hash passwords
    from argon2 import PasswordHasher

#: What an operator's name may be: it is shown in the console and to technicians.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()


@cache
def _dummy() -> str:
    """A hash checked when the name is unknown: a sign-in takes as long either way."""
    return _hasher().hash("no operator has this password")


class OperatorError(ValueError):
    """A name or password that cannot be used; the message says why."""


def check_name(name: str) -> str:
    """The name stripped, or ``OperatorError``."""
    name = name.strip()
    if not NAME.fullmatch(name):
        raise OperatorError(
            "an operator name is 1 to 64 letters, digits, dots, dashes, underscores or @, "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise OperatorError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


class Operators:
    """Adds, checks, lists and removes the console's operator accounts."""

    def __init__(self, workorders: WorkOrders) -> None:
        self.workorders = workorders

    async def add(self, name: str, password: str) -> None:
        """Store ``name`` with ``password``'s hash; a name that exists gets the new password.

        ``OperatorError`` for a name or password that cannot be used.
        """
        name = check_name(name)
        digest = await asyncio.to_thread(_hasher().hash, check_password(password))
        await self.workorders.put_operator(name, digest)

    async def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; False for an unknown name or a bad hash."""
        try:
            name = check_name(name)
        except OperatorError:
            return False
        if not password or len(password) > MAX_PASSWORD:
            return False
        try:
            stored = await self.workorders.operator_hash(name)
        except WorkOrderError:
            return False
        return await asyncio.to_thread(_matches, stored, password)

    async def names(self) -> list[str]:
        return await self.workorders.list_operators()

    async def remove(self, name: str) -> bool:
        """Delete an operator; whether there was one."""
        return await self.workorders.remove_operator(name.strip())

    async def exists(self, name: str) -> bool:
        return await self.workorders.operator_hash(name.strip()) is not None


def _matches(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        _hasher().verify(stored or _dummy(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


__all__ = ["MIN_PASSWORD", "OperatorError", "Operators", "check_name", "check_password"]
