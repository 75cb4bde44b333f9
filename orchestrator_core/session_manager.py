"""Loads and saves sessions: the orchestrator's only door to the store."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import AbstractAsyncContextManager

from pydantic import ValidationError

from orchestrator_core.errors import StaleVersionError, StoreError
from orchestrator_core.locks import Lease, LocalLock, SessionLock
from orchestrator_core.observe import NO_OBSERVER, Observer
from orchestrator_core.plans import Plan
from orchestrator_core.secrets import FernetSecrets, Secrets, SecretUnreadable
from orchestrator_core.session import REPLIES, ParkedOrder, Phase, Session
from orchestrator_core.stores.base import (
    Answer,
    Retention,
    SessionMeta,
    SessionState,
    SessionStore,
    Swept,
)
from orchestrator_core.turns import Reply, SessionKey

log = logging.getLogger("techassist.sessions")

#: Parsed plan snapshots kept in memory; a process sees few plan versions.
PLAN_CACHE_SIZE = 256


def plan_digest(data: str) -> str:
    """Names a plan snapshot by its content (JSON text)."""
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class SessionManager:
    """Turns sessions into stored rows and back, with versions and per-key locks.

    It also keeps what lives beside a session in the store: the replies of its
    recent turns, and the plan snapshots sessions refer to by digest.

    Values the session's plan marks sensitive are stored sealed by ``secrets``
    (without one, a key that lives as long as this object); ``retention`` says
    how long ``sweep`` keeps a session after its last save.
    """

    def __init__(
        self,
        store: SessionStore,
        locks: SessionLock | None = None,
        *,
        secrets: Secrets | None = None,
        retention: Retention | None = None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self.store = store
        # Told of stale saves here; a lock with leases reports lost leases to it too.
        self.observer = observer
        self.locks = locks or LocalLock()
        self.secrets: Secrets = secrets or FernetSecrets([FernetSecrets.new_key()])
        self.retention = retention or Retention()
        self._plans: dict[str, Plan] = {}
        # Snapshots made here, by plan object: their digest and JSON text.
        self._snapshots: dict[int, tuple[Plan, str, str]] = {}

    def lock(
        self, key: SessionKey, *, message_id: str | None = None
    ) -> AbstractAsyncContextManager[Lease]:
        """Hold this for a whole turn, so one session's turns never interleave.

        ``LockError`` if another turn holds it for longer than the lock's ``wait``.
        """
        return self.locks.lock(key.as_str(), message_id=message_id)

    def create_session(self, key: SessionKey) -> Session:
        """Start a new, not yet saved session; the first ``update_session_data`` stores it."""
        return Session(key=key)

    async def get_session_data(self, key: SessionKey, lease: Lease | None = None) -> Session | None:
        """Load the session for ``key`` with its plan attached, or ``None`` when there is none.

        With the ``lease`` held on ``key``, what its lock read as it was taken
        serves, once, instead of a load.
        """
        prefetched = lease.prefetched if lease is not None else None
        if prefetched is not None and not prefetched.loaded:
            prefetched.loaded = True
            stored = prefetched.stored
        else:
            stored = await self.store.load(key.as_str())
        if stored is None:
            return None
        try:
            session = Session.model_validate_json(stored.data)
        except ValidationError as exc:
            raise StoreError(f"session {key.as_str()!r} is unreadable: {exc}") from exc
        session.version = stored.version
        if session.sealed:
            self._open_sealed(session)
        for parked in session.parked.values():
            if parked.sealed:
                self._open_parked(session, parked)
        if session.plan_digest is not None:
            session.attach_plan(await self._plan(session), session.plan_digest)
        return session

    def _open_sealed(self, session: Session) -> None:
        for name, sealed in session.sealed.items():
            try:
                session.values[name] = json.loads(self.secrets.open(sealed))
            except (SecretUnreadable, ValueError):
                # Sealed under a key no longer configured: the value is asked for again.
                log.warning(
                    "a sensitive value (%s) of session %s cannot be opened with the configured"
                    " secret keys; it will be asked for again",
                    name,
                    session.key.as_str(),
                )
        session.sealed = {}

    def _open_parked(self, session: Session, parked: ParkedOrder) -> None:
        for name, sealed in parked.sealed.items():
            try:
                parked.values[name] = json.loads(self.secrets.open(sealed))
            except (SecretUnreadable, ValueError):
                log.warning(
                    "a sensitive value (%s) of order %s parked in session %s cannot be opened"
                    " with the configured secret keys; it will be asked for again",
                    name,
                    parked.order.order_id,
                    session.key.as_str(),
                )
        parked.sealed = {}

    async def update_session_data(
        self,
        session: Session,
        *,
        answered: tuple[str, list[Reply]] | None = None,
        lease: Lease | None = None,
    ) -> Session:
        """Save ``session`` if nobody saved it since it was loaded; bump its version.

        ``answered`` (a message id and the replies it got) is stored with the
        session, so ``replies_for`` can answer that message id again.
        Raises ``StaleVersionError`` (a ``StoreError``) when the stored version moved on.
        """
        answer = None
        if answered is not None:
            answer = Answer(answered[0], REPLIES.dump_json(answered[1]).decode())
        try:
            session.version = await self.store.save(
                session.key.as_str(),
                self._dump(session),
                session.version,
                answer=answer,
                meta=SessionMeta(
                    state=_state(session),
                    plan_digest=session.plan_digest,
                    remind_at=session.remind_at,
                    cuid=session.cuid,
                ),
                lease=lease,
                snapshot=session.unsaved_snapshot,
            )
        except StaleVersionError:
            self.observer.stale_save()
            raise
        session.snapshot_saved()
        return session

    def _dump(self, session: Session) -> str:
        """The stored form: the session's JSON, with its sensitive values sealed (those of
        its parked orders too)."""
        plan = session.plan
        sensitive = plan.sensitive_names() if plan is not None else frozenset()
        held = [name for name in session.values if name in sensitive]
        parked = {
            order_id: self._sealed_parked(p)
            for order_id, p in session.parked.items()
            if any(name in p.values for name in p.sensitive)
        }
        if not held and not parked:
            return session.model_dump_json()
        update: dict[str, object] = {}
        if held:
            update["values"] = {k: v for k, v in session.values.items() if k not in sensitive}
            update["sealed"] = {
                name: self.secrets.seal(json.dumps(session.values[name], default=str))
                for name in held
            }
        if parked:
            update["parked"] = {**session.parked, **parked}
        return session.model_copy(update=update).model_dump_json()

    def _sealed_parked(self, parked: ParkedOrder) -> ParkedOrder:
        secret = set(parked.sensitive)
        return parked.model_copy(
            update={
                "values": {k: v for k, v in parked.values.items() if k not in secret},
                "sealed": {
                    name: self.secrets.seal(json.dumps(value, default=str))
                    for name, value in parked.values.items()
                    if name in secret
                },
            }
        )

    async def summaries(self, limit: int = 1000) -> list[Session]:
        """The stored sessions, most recently saved first, at most ``limit`` (for the console).

        Each is parsed as stored, with its version: sensitive values stay sealed
        (never opened) and no plan is attached. A session that cannot be read is
        left out, with a warning.
        """
        found = []
        for summary in await self.store.scan(limit=limit):
            try:
                session = Session.model_validate_json(summary.data)
            except ValidationError:
                log.warning("session %s is unreadable; left out of the list", summary.key)
                continue
            session.version = summary.version
            found.append(session)
        return found

    async def sweep(self, now: float | None = None) -> Swept:
        """Delete expired sessions and unused plan snapshots from the store (see ``Retention``).

        The server calls it at start and then periodically (``bot/app.py``).
        """
        return await self.store.sweep(self.retention, time.time() if now is None else now)

    async def replies_for(
        self, key: SessionKey, message_id: str, lease: Lease | None = None
    ) -> list[Reply] | None:
        """The replies a recent turn of ``key`` gave to ``message_id``, or ``None`` if it is new."""
        prefetched = lease.prefetched if lease is not None else None
        if prefetched is not None and prefetched.message_id == message_id:
            stored = prefetched.answer
        else:
            stored = await self.store.answered(key.as_str(), message_id)
        if stored is None:
            return None
        try:
            return REPLIES.validate_json(stored)
        except ValidationError as exc:
            raise StoreError(f"the replies to {message_id!r} are unreadable: {exc}") from exc

    async def start_plan(self, session: Session, plan: Plan) -> None:
        """Attach ``plan`` to ``session``, keeping a snapshot of it for the rest of the order.

        The snapshot is stored by the session's next save, in the same step as
        the session that refers to it, so a session in the store always finds
        its plan, whatever the plan files say by then, and starting an order
        costs no round trip of its own.
        """
        known = self._snapshots.get(id(plan))
        if known is None or known[0] is not plan:
            data = plan.model_dump_json()
            self._cache(plan_digest(data), plan)
            if len(self._snapshots) >= PLAN_CACHE_SIZE:
                self._snapshots.clear()
            known = self._snapshots[id(plan)] = (plan, plan_digest(data), data)
        # Sent with every order started (it is write-once): a sweep may have removed an
        # unused snapshot since.
        session.attach_plan(plan, known[1], unsaved=known[2])

    async def plan_by_digest(self, digest: str) -> Plan | None:
        """The plan snapshot stored under ``digest``, parsed (cached), or None if it is gone."""
        plan = self._plans.get(digest)
        if plan is not None:
            return plan
        data = await self.store.get_snapshot(digest)
        if data is None:
            return None
        try:
            plan = Plan.model_validate_json(data)
        except ValidationError:
            log.warning("the plan snapshot %s is unreadable", digest)
            return None
        self._cache(digest, plan)
        return plan

    async def resume_plan(
        self, session: Session, digest: str, fallback: Plan | None
    ) -> Plan | None:
        """Work ``session``'s order with the snapshot ``digest`` again (a parked order
        resumes); ``fallback`` (the current plan for its type) if a sweep removed it.

        The snapshot is kept again by the next save, as ``start_plan`` does.
        """
        plan = await self.plan_by_digest(digest) or fallback
        if plan is not None:
            await self.start_plan(session, plan)
        return plan

    async def _plan(self, session: Session) -> Plan:
        digest = session.plan_digest
        assert digest is not None
        plan = self._plans.get(digest)
        if plan is not None:
            return plan
        data = await self.store.get_snapshot(digest)
        if data is None and session.legacy_plan is not None:
            # A session saved before snapshots moved out of it: move its own out now.
            data = session.legacy_plan
            await self.store.put_snapshot(digest, data)
        if data is None:
            raise StoreError(f"the plan snapshot {digest} of {session.key.as_str()!r} is missing")
        try:
            plan = Plan.model_validate_json(data)
        except ValidationError as exc:
            raise StoreError(f"the plan snapshot {digest} is unreadable: {exc}") from exc
        self._cache(digest, plan)
        return plan

    def _cache(self, digest: str, plan: Plan) -> None:
        if len(self._plans) >= PLAN_CACHE_SIZE:
            self._plans.clear()  # sessions hold their own plan; this only saves parsing
        self._plans[digest] = plan


def _state(session: Session) -> SessionState:
    if session.cuid is None:
        return "unidentified"
    return "ended" if session.phase is Phase.ENDED else "active"
