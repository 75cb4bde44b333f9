"""Technicians' credentials: websocket tokens and one-time sign-in codes for Slack.

- A **token** is 32 random bytes (``tat_`` and 43 URL-safe characters). It is
  printed once, when it is issued; the database keeps only its SHA-256 digest
  and its expiry. Verifying hashes what was presented and looks the digest up,
  then compares in constant time. The token decides the technician.
- A **code** is 6 random digits for one technician, valid for ten minutes and
  usable once. Its digest covers the CUID as well, so it is typed as
  ``CUID CODE``; a code is useless for any other technician. Five wrong codes
  for a technician burn the codes they hold.
- A **link** token is 32 random bytes (``tal_`` and 43 URL-safe characters), put in
  a one-time sign-in URL for the web chat: valid for 15 minutes, usable once. It is
  exchanged for a technician token, which the browser keeps in a cookie.

Nothing here logs a token or a code. The clock is injectable, so expiry is
tested without waiting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orchestrator_core.errors import WorkOrderError
from orchestrator_core.workorders import WorkOrders

TOKEN_PREFIX = "tat_"
#: What a token looks like, for the log filter that redacts them.
TOKEN_PATTERN = re.compile(r"\bta[tl]_[A-Za-z0-9_-]{20,}")
DEFAULT_TOKEN_TTL = timedelta(days=30)
CODE_TTL = timedelta(minutes=10)
CODE_DIGITS = 6
#: Wrong codes for a technician after which their outstanding codes no longer work.
CODE_MAX_FAILURES = 5
LINK_PREFIX = "tal_"
LINK_TTL = timedelta(minutes=15)
#: Longer than any token we issue; longer input is refused before it is hashed.
MAX_TOKEN_LENGTH = 256

_CUID = re.compile(r"[A-Z0-9]{2,16}")
_CODE = re.compile(rf"\d{{{CODE_DIGITS}}}")


def utc_now() -> datetime:
    return datetime.now(UTC)


def token_digest(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def code_digest(cuid: str, code: str) -> str:
    """What the database keeps of a one-time code: bound to the technician it was issued for."""
    return hashlib.sha256(f"code:{cuid}:{code}".encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    """A credential just issued: the secret itself (shown once), whose it is, until when."""

    secret: str
    cuid: str
    expires_at: datetime


class Credentials:
    """Issues, verifies and revokes technicians' tokens and codes in the work-order database."""

    def __init__(self, db: WorkOrders, clock: Callable[[], datetime] = utc_now) -> None:
        self.db = db
        self.clock = clock

    async def _technician(self, cuid: str) -> str:
        cuid = cuid.strip().upper()
        if not _CUID.fullmatch(cuid) or await self.db.get_technician(cuid) is None:
            raise WorkOrderError(f"no technician with CUID {cuid!r}")
        return cuid

    # -- tokens

    async def issue_token(self, cuid: str, ttl: timedelta = DEFAULT_TOKEN_TTL) -> Issued:
        """A new token for a known technician; WorkOrderError for an unknown CUID."""
        if ttl <= timedelta(0):
            raise WorkOrderError("a token's lifetime must be positive")
        cuid = await self._technician(cuid)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        await self.db.purge_credentials(now)
        await self.db.add_credential(token_digest(token), cuid, "token", now, now + ttl)
        return Issued(token, cuid, now + ttl)

    async def verify_token(self, token: str) -> str | None:
        """The CUID an unexpired, unrevoked token belongs to, or None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        digest = token_digest(token)
        found = await self.db.credential(digest, "token", self.clock())
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return found[1]

    async def revoke_token(self, token: str) -> bool:
        """Revoke one token; whether it was known."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return False
        return await self.db.revoke_credential(token_digest(token), "token")

    async def revoke_tokens(self, cuid: str) -> int:
        """Revoke every token of a technician; how many there were."""
        return await self.db.revoke_credentials(cuid, "token")

    # -- one-time sign-in links (the web chat)

    async def issue_link(self, cuid: str, ttl: timedelta = LINK_TTL) -> Issued:
        """A new one-time link token for a known technician, valid for ``ttl`` (15 minutes)."""
        if ttl <= timedelta(0):
            raise WorkOrderError("a link's lifetime must be positive")
        cuid = await self._technician(cuid)
        token = LINK_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        await self.db.purge_credentials(now)
        await self.db.add_credential(token_digest(token), cuid, "link", now, now + ttl)
        return Issued(token, cuid, now + ttl)

    async def redeem_link(self, token: str) -> str | None:
        """Use a link token once; the technician's CUID when it was valid, unused and unexpired.

        Of two concurrent uses only one succeeds (the store marks it used conditionally).
        """
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(LINK_PREFIX):
            return None
        digest = token_digest(token)
        now = self.clock()
        found = await self.db.credential(digest, "link", now)
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        if not await self.db.use_credential(digest, "link", now, CODE_MAX_FAILURES):
            return None
        return found[1]

    # -- one-time codes

    async def issue_code(self, cuid: str) -> Issued:
        """A new 6-digit code for a known technician, valid for ten minutes, once."""
        cuid = await self._technician(cuid)
        now = self.clock()
        await self.db.purge_credentials(now)  # used and expired ones are of no use to anyone
        for tries_left in reversed(range(3)):
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            try:
                await self.db.add_credential(
                    code_digest(cuid, code), cuid, "code", now, now + CODE_TTL
                )
            except WorkOrderError:  # the same code is already out for this technician
                if not tries_left:
                    raise
                continue
            return Issued(code, cuid, now + CODE_TTL)
        raise AssertionError("unreachable")

    async def redeem_code(self, cuid: str, code: str) -> str | None:
        """Use a technician's code; their CUID when it was valid, unused and unexpired."""
        cuid, code = cuid.strip().upper(), code.strip()
        if not _CUID.fullmatch(cuid) or not _CODE.fullmatch(code):
            return None
        now = self.clock()
        if await self.db.use_credential(code_digest(cuid, code), "code", now, CODE_MAX_FAILURES):
            return cuid
        await self.db.credential_failed(cuid, "code", now)
        return None
