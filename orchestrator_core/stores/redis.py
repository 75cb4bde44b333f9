"""A session store on Redis, shared by every instance that reaches the same server.

Each session is one hash (data, version, state, plan digest, time of the save);
its answers are a hash of replies by message id beside a sorted set of the
versions that stored them. A Lua script makes a save one atomic step: check
the version, write the data, record the answer, keep the last ``ANSWERS_KEPT``.

A save that is the first to refer to a plan snapshot carries it, so the
snapshot is kept in the same script as the session: a turn is two round trips
(the lease's script, which also loads; the save, which also releases), even
the turn that starts an order.

Retention is carried by Redis itself: every save sets the session's keys to
expire after the TTL of its state (``Retention``), so an instance that never
sweeps still leaks nothing. A plan snapshot expires ``SNAPSHOT_GRACE`` after
it was put, and every save that refers to it pushes its expiry to at least the
referring session's own, so a snapshot never goes before a session that may
still load it. ``sweep`` applies a retention at a given time on top of that,
through small indexes (sorted sets of save times by state, and of snapshot
deadlines), and removes index entries Redis already expired.

The same save script keeps more sorted sets: every session by the time of
its save (``recent``, for ``scan``), the sessions due a reminder by when
(``due``), and per technician their sessions by the time of the save
(``cuid:<cuid>``, for ``sessions_of``; a save under another CUID moves the key,
and the set expires with its longest-lived session); reading any of them drops
the entries of sessions Redis already expired, and ``sweep`` and ``delete`` take
their keys off all of them. Sessions saved before the index by technician
existed are put in it once, by ``index_technicians`` (an instance's first
sweep). ``RedisNotifier`` tells every instance which sessions have notices, on
the ``notices`` channel.

Keys all come from ``RedisKeys``; several stores (or tests) share one server
under different prefixes. The scripts touch several keys, so the store wants
one Redis server (or a primary with replicas), not a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator_core.errors import (
    LockError,
    LockUnavailable,
    StaleVersionError,
    StoreError,
    StoreUnavailable,
)
from orchestrator_core.locks import DEFAULT_LIFETIME, DEFAULT_WAIT, Lease, Prefetched, SessionLock
from orchestrator_core.notices import Deliver, hand_on
from orchestrator_core.owners import Announcement, Taken
from orchestrator_core.stores.base import (
    ANSWERS_KEPT,
    SNAPSHOT_GRACE,
    Answer,
    Retention,
    SessionMeta,
    SessionState,
    SessionStore,
    SessionSummary,
    StoredSession,
    Swept,
)

log = logging.getLogger("techassist.redis")

DEFAULT_PREFIX = "techassist:"
STATES: tuple[SessionState, ...] = ("unidentified", "active", "ended")
#: Index entries one sweep script looks at, so a sweep never blocks Redis for long.
SWEEP_BATCH = 500


#: What redis-py raises when the server cannot be reached: down, restarting, loading its data.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def store_error(doing: str, exc: RedisError) -> StoreError:
    """The ``StoreError`` for a failed call: ``StoreUnavailable`` if Redis could not be reached,
    so the technician is told to send again rather than that something broke."""
    kind = StoreUnavailable if isinstance(exc, UNREACHABLE) else StoreError
    return kind(f"{doing}: {exc}")


def glob_escape(text: str) -> str:
    """``text`` as a ``SCAN`` pattern that matches only itself."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def lock_error(doing: str, exc: RedisError) -> LockError:
    """The ``LockError`` for a failed call: ``LockUnavailable`` if Redis could not be reached."""
    kind = LockUnavailable if isinstance(exc, UNREACHABLE) else LockError
    return kind(f"{doing}: {exc}")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Every Redis key TechAssist uses, under one prefix."""

    prefix: str = DEFAULT_PREFIX

    def session(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def answers(self, key: str) -> str:
        """Replies (JSON text) by message id."""
        return f"{self.prefix}a:{key}"

    def answer_versions(self, key: str) -> str:
        """Message ids scored by the version of the save that answered them."""
        return f"{self.prefix}av:{key}"

    def saved(self, state: SessionState) -> str:
        """Session keys in ``state`` scored by the time of their last save, for ``sweep``."""
        return f"{self.prefix}saved:{state}"

    @property
    def recent(self) -> str:
        """Session keys scored by the time of their last save, for ``scan``."""
        return f"{self.prefix}recent"

    @property
    def due(self) -> str:
        """Session keys scored by when they are due a reminder, for ``due``."""
        return f"{self.prefix}due"

    @property
    def technicians_indexed(self) -> str:
        """Set once the sessions saved before ``sessions_of`` existed are in its index."""
        return f"{self.prefix}cuid-indexed"

    def technician(self, cuid: str) -> str:
        """The keys of a technician's sessions scored by the time of their last save, for
        ``sessions_of``."""
        return f"{self.prefix}cuid:{cuid}"

    @property
    def notices(self) -> str:
        """The pub/sub channel on which sessions with notices waiting are announced."""
        return f"{self.prefix}notices"

    def snapshot(self, digest: str) -> str:
        return f"{self.prefix}plan:{digest}"

    def snapshot_deadlines(self) -> str:
        """Snapshot digests scored by the time until which they are kept."""
        return f"{self.prefix}plans"

    def lock(self, key: str) -> str:
        return f"{self.prefix}lock:{key}"

    def seen(self, id: str) -> str:
        """A processed id (``RedisSeen``), kept for its TTL."""
        return f"{self.prefix}seen:{id}"

    def owner(self, cuid: str) -> str:
        """The token of the connection that holds a technician's CUID (``RedisOwners``)."""
        return f"{self.prefix}owner:{cuid}"

    @property
    def owner_fence(self) -> str:
        """The counter that gives each claim of a CUID its fence (``RedisOwners``)."""
        return f"{self.prefix}owner-fence"

    @property
    def takeover(self) -> str:
        """The pub/sub channel on which claims of a CUID are announced."""
        return f"{self.prefix}takeover"

    def pattern(self) -> str:
        """A SCAN pattern matching every key under the prefix."""
        return f"{self.prefix}*"


# KEYS: session, answers, answer versions, saved:unidentified, saved:active, saved:ended,
#       snapshot deadlines, snapshot, lock, recent, due, the technician's sessions
# ARGV: session key, data, expected version, state, digest ('' for none), now (s),
#       ttl (ms), message id ('' for none), replies, answers kept, lease token ('' for none),
#       snapshot data ('' for none), snapshot grace (ms), remind at (s, '' for none),
#       cuid ('' for none), key prefix of the technicians' sessions
# Returns {1, new version, lease released (0/1)}, {0, stored version or -1} when stale,
# or {2, holder} when another holder has the lease.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'version')
local actual = current and tonumber(current) or 0
local holder = false
if ARGV[11] ~= '' then
    holder = redis.call('GET', KEYS[9])
    if holder and holder ~= ARGV[11] then return {2, 0} end
end
if actual ~= tonumber(ARGV[3]) then
    return {0, current and actual or -1}
end
local version = actual + 1
local now, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local was = redis.call('HGET', KEYS[1], 'cuid')
if was and was ~= '' and was ~= ARGV[15] then
    redis.call('ZREM', ARGV[16] .. was, ARGV[1])
end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', version, 'state', ARGV[4],
    'digest', ARGV[5], 'saved', ARGV[6], 'cuid', ARGV[15])
if ARGV[15] ~= '' then
    redis.call('ZADD', KEYS[12], now, ARGV[1])
    if redis.call('PTTL', KEYS[12]) < ttl then redis.call('PEXPIRE', KEYS[12], ttl) end
end
redis.call('PEXPIRE', KEYS[1], ttl)
for i = 4, 6 do redis.call('ZREM', KEYS[i], ARGV[1]) end
local index = ({unidentified = 4, active = 5, ended = 6})[ARGV[4]] or 5
redis.call('ZADD', KEYS[index], now, ARGV[1])
redis.call('ZADD', KEYS[10], now, ARGV[1])
if ARGV[14] ~= '' then
    redis.call('ZADD', KEYS[11], tonumber(ARGV[14]), ARGV[1])
else
    redis.call('ZREM', KEYS[11], ARGV[1])
end
if ARGV[8] ~= '' then
    redis.call('HSET', KEYS[2], ARGV[8], ARGV[9])
    redis.call('ZADD', KEYS[3], version, ARGV[8])
    local cutoff = version - tonumber(ARGV[10])
    local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff)
    if #old > 0 then
        redis.call('HDEL', KEYS[2], unpack(old))
        redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
    end
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
if ARGV[5] ~= '' and ARGV[12] ~= '' then
    local grace = tonumber(ARGV[13])
    if not redis.call('SET', KEYS[8], ARGV[12], 'NX', 'PX', grace) then
        redis.call('PEXPIRE', KEYS[8], grace, 'GT')
    end
    redis.call('ZADD', KEYS[7], 'GT', now + grace / 1000, ARGV[5])
end
if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[7], 'GT', now + ttl / 1000, ARGV[5])
    redis.call('PEXPIRE', KEYS[8], ttl, 'GT')
end
local released = 0
if holder then released = redis.call('DEL', KEYS[9]) end
return {1, version, released}
"""

# KEYS: snapshot, snapshot deadlines. ARGV: digest, data, now (s), grace (ms)
_PUT_SNAPSHOT = """
local grace = tonumber(ARGV[4])
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', grace) then
    redis.call('PEXPIRE', KEYS[1], grace, 'GT')
end
redis.call('ZADD', KEYS[2], 'GT', tonumber(ARGV[3]) + grace / 1000, ARGV[1])
"""

# KEYS: saved:<state>, recent, due. ARGV: cutoff (s), batch, key prefix of sessions, answers,
# versions, technicians' sessions. Returns {entries looked at, sessions deleted}.
_SWEEP_SESSIONS = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local deleted = 0
for _, key in ipairs(members) do
    local cuid = redis.call('HGET', ARGV[3] .. key, 'cuid')
    if cuid and cuid ~= '' then redis.call('ZREM', ARGV[6] .. cuid, key) end
    deleted = deleted + redis.call('DEL', ARGV[3] .. key)
    redis.call('DEL', ARGV[4] .. key, ARGV[5] .. key)
    redis.call('ZREM', KEYS[1], key)
    redis.call('ZREM', KEYS[2], key)
    redis.call('ZREM', KEYS[3], key)
end
return {#members, deleted}
"""

# KEYS: snapshot deadlines. ARGV: now (s), batch, snapshot key prefix.
_SWEEP_SNAPSHOTS = """
local digests = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local deleted = 0
for _, digest in ipairs(digests) do
    deleted = deleted + redis.call('DEL', ARGV[3] .. digest)
    redis.call('ZREM', KEYS[1], digest)
end
return {#digests, deleted}
"""


# KEYS: recent. ARGV: limit, session key prefix. Returns key, data, version, saved time for
# each session, newest first; entries whose session Redis already expired leave the index.
_SCAN = """
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local found = {}
for i = 1, #members, 2 do
    local row = redis.call('HMGET', ARGV[2] .. members[i], 'data', 'version')
    if row[1] and row[2] then
        table.insert(found, members[i])
        table.insert(found, row[1])
        table.insert(found, row[2])
        table.insert(found, members[i + 1])
    else
        redis.call('ZREM', KEYS[1], members[i])
    end
end
return found
"""

# KEYS: session, answers, answer versions, saved:unidentified, saved:active, saved:ended,
#       recent, due. ARGV: session key, key prefix of the technicians' sessions.
_DELETE = """
local cuid = redis.call('HGET', KEYS[1], 'cuid')
if cuid and cuid ~= '' then redis.call('ZREM', ARGV[2] .. cuid, ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
for i = 4, 8 do redis.call('ZREM', KEYS[i], ARGV[1]) end
"""

# KEYS: the technician's sessions. ARGV: cuid, limit, session key prefix. Returns key, data,
# version, saved time for each, newest first; entries whose session Redis already expired (or
# that a later save gave another technician) leave the index, and the next ones are read.
_SESSIONS_OF = """
local limit = tonumber(ARGV[2])
local found, kept = {}, 0
while kept < limit do
    local members = redis.call('ZREVRANGE', KEYS[1], kept, kept + limit - 1, 'WITHSCORES')
    if #members == 0 then break end
    for i = 1, #members, 2 do
        local row = redis.call('HMGET', ARGV[3] .. members[i], 'data', 'version', 'cuid')
        if row[1] and row[2] and row[3] == ARGV[1] then
            if kept < limit then
                table.insert(found, members[i])
                table.insert(found, row[1])
                table.insert(found, row[2])
                table.insert(found, members[i + 1])
            end
            kept = kept + 1
        else
            redis.call('ZREM', KEYS[1], members[i])
        end
    end
end
return found
"""

# KEYS: session hashes. ARGV: session key prefix, key prefix of the technicians' sessions.
# Sessions saved before the index by technician: each gets its CUID from its data ('' if
# none) and its key in that technician's index, scored by its save; those already with a
# CUID field (saved since) are left as they are. Returns how many it indexed.
_INDEX_TECHNICIANS = """
local indexed = 0
for _, name in ipairs(KEYS) do
    if redis.call('TYPE', name).ok == 'hash' then
        local row = redis.call('HMGET', name, 'data', 'cuid', 'saved')
        if row[1] and not row[2] then
            local ok, stored = pcall(cjson.decode, row[1])
            local cuid = ''
            if ok and type(stored) == 'table' and type(stored['cuid']) == 'string' then
                cuid = stored['cuid']
            end
            redis.call('HSET', name, 'cuid', cuid)
            if cuid ~= '' then
                local index = ARGV[2] .. cuid
                local key = string.sub(name, #ARGV[1] + 1)
                redis.call('ZADD', index, tonumber(row[3]) or 0, key)
                local left = redis.call('PTTL', name)
                if left > 0 and redis.call('PTTL', index) < left then
                    redis.call('PEXPIRE', index, left)
                end
                indexed = indexed + 1
            end
        end
    end
end
return indexed
"""

# KEYS: due. ARGV: now (s), limit, session key prefix. The keys due, earliest first; entries
# whose session Redis already expired leave the index.
_DUE = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local found = {}
for _, key in ipairs(members) do
    if redis.call('EXISTS', ARGV[3] .. key) == 1 then
        table.insert(found, key)
    else
        redis.call('ZREM', KEYS[1], key)
    end
end
return found
"""


#: Tries after the first for a call whose connection failed, and the pause before each.
RECONNECT_TRIES = 2
RECONNECT_PAUSE = (0.05, 0.25)  # seconds: the first pause, and the most any pause lasts
#: Seconds to wait for a new connection before the call fails.
CONNECT_TIMEOUT = 5.0
#: Connections one instance opens to Redis at most (the takeover subscriber holds one),
#: and the seconds a call waits for one of them to be free before it fails.
POOL_SIZE = 64
POOL_WAIT = 5.0


def connect(url: str) -> Redis:
    """A ``redis.asyncio`` client for ``url`` (``redis://host:port/db``), answering in text.

    A call whose pooled connection died (Redis restarted since it was opened) is
    made again on a new connection: without this, redis-py's client from a URL
    retries nothing, and each dead connection in the pool fails one more turn
    after Redis is back. The pauses are short, so a server that is really down
    still fails the call within half a second (``StoreUnavailable``).

    The pool is bounded and blocking: past ``POOL_SIZE`` calls in flight, a call
    waits for a connection to come back instead of failing at once with "Too
    many connections" (redis-py's default pool, 100 connections, does that), so
    a burst of turns queues on the instance rather than reaching technicians as
    errors.
    """
    first, most = RECONNECT_PAUSE
    retry = Retry(ExponentialWithJitterBackoff(cap=most, base=first), RECONNECT_TRIES)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        decode_responses=True,
        retry=retry,
        socket_connect_timeout=CONNECT_TIMEOUT,
    )
    return Redis.from_pool(pool)


class RedisStore(SessionStore):
    """Sessions in Redis; versioned saves are one Lua script.

    ``retention`` sets the TTLs each save gives the session's keys; pass the one
    the ``SessionManager`` sweeps with.
    """

    def __init__(
        self,
        client: Redis,
        *,
        keys: RedisKeys | None = None,
        retention: Retention | None = None,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self.keys = keys or RedisKeys()
        self.retention = retention or Retention()
        self._owns_client = owns_client
        self._save = client.register_script(_SAVE)
        self._put_snapshot = client.register_script(_PUT_SNAPSHOT)
        self._sweep_sessions = client.register_script(_SWEEP_SESSIONS)
        self._sweep_snapshots = client.register_script(_SWEEP_SNAPSHOTS)
        self._scan = client.register_script(_SCAN)
        self._due = client.register_script(_DUE)
        self._delete = client.register_script(_DELETE)
        self._sessions_of = client.register_script(_SESSIONS_OF)
        self._index_technicians = client.register_script(_INDEX_TECHNICIANS)
        self._technicians_indexed = False

    async def load(self, key: str) -> StoredSession | None:
        try:
            data, version = await self.client.hmget(self.keys.session(key), ["data", "version"])
        except RedisError as exc:
            raise store_error(f"cannot load session {key!r}", exc) from exc
        if data is None or version is None:
            return None
        return StoredSession(str(data), int(version))

    async def save(
        self,
        key: str,
        data: str,
        expected_version: int,
        *,
        answer: Answer | None = None,
        meta: SessionMeta = SessionMeta(),  # noqa: B008 - frozen, shared safely
        lease: Lease | None = None,
        snapshot: str | None = None,
    ) -> int:
        k = self.keys
        digest = meta.plan_digest or ""
        ttl_ms = max(1, int(self.retention.ttl(meta.state) * 1000))
        try:
            saved = await self._save(
                keys=[
                    k.session(key),
                    k.answers(key),
                    k.answer_versions(key),
                    *(k.saved(state) for state in STATES),
                    k.snapshot_deadlines(),
                    k.snapshot(digest),
                    k.lock(key),
                    k.recent,
                    k.due,
                    k.technician(meta.cuid or ""),
                ],
                args=[
                    key,
                    data,
                    expected_version,
                    meta.state,
                    digest,
                    repr(time.time()),
                    ttl_ms,
                    answer.message_id if answer else "",
                    answer.replies if answer else "",
                    ANSWERS_KEPT,
                    lease.token if lease is not None else "",
                    snapshot or "",
                    int(SNAPSHOT_GRACE * 1000),
                    "" if meta.remind_at is None else repr(meta.remind_at),
                    meta.cuid or "",
                    k.technician(""),
                ],
            )
        except RedisError as exc:
            raise store_error(f"cannot save session {key!r}", exc) from exc
        ok, version = int(saved[0]), int(saved[1])
        if ok == 2:
            if lease is not None:
                lease.lost = True
            raise LockError(f"the lease on {key!r} was taken over; the save was refused")
        if ok != 1:
            raise StaleVersionError(key, expected_version, None if version < 0 else version)
        if lease is not None and int(saved[2]) == 1:
            lease.released = True
        return version

    async def answered(self, key: str, message_id: str) -> str | None:
        try:
            replies = await self.client.hget(self.keys.answers(key), message_id)
        except RedisError as exc:
            raise store_error(f"cannot read the answers of {key!r}", exc) from exc
        return None if replies is None else str(replies)

    async def delete(self, key: str) -> None:
        k = self.keys
        try:
            await self._delete(
                keys=[
                    k.session(key),
                    k.answers(key),
                    k.answer_versions(key),
                    *(k.saved(state) for state in STATES),
                    k.recent,
                    k.due,
                ],
                args=[key, k.technician("")],
            )
        except RedisError as exc:
            raise store_error(f"cannot delete session {key!r}", exc) from exc

    async def put_snapshot(self, digest: str, data: str) -> None:
        try:
            await self._put_snapshot(
                keys=[self.keys.snapshot(digest), self.keys.snapshot_deadlines()],
                args=[digest, data, repr(time.time()), int(SNAPSHOT_GRACE * 1000)],
            )
        except RedisError as exc:
            raise store_error(f"cannot keep plan snapshot {digest}", exc) from exc

    async def get_snapshot(self, digest: str) -> str | None:
        try:
            data = await self.client.get(self.keys.snapshot(digest))
        except RedisError as exc:
            raise store_error(f"cannot read plan snapshot {digest}", exc) from exc
        return None if data is None else str(data)

    async def scan(self, *, limit: int = 1000) -> list[SessionSummary]:
        if limit <= 0:
            return []
        try:
            found = await self._scan(keys=[self.keys.recent], args=[limit, self.keys.session("")])
        except RedisError as exc:
            raise store_error("cannot list the sessions", exc) from exc
        return [
            SessionSummary(str(found[i]), str(found[i + 1]), int(found[i + 2]), float(found[i + 3]))
            for i in range(0, len(found), 4)
        ]

    async def sessions_of(self, cuid: str, *, limit: int = 50) -> list[SessionSummary]:
        if limit <= 0:
            return []
        try:
            found = await self._sessions_of(
                keys=[self.keys.technician(cuid)], args=[cuid, limit, self.keys.session("")]
            )
        except RedisError as exc:
            raise store_error("cannot list the sessions of a technician", exc) from exc
        return [
            SessionSummary(str(found[i]), str(found[i + 1]), int(found[i + 2]), float(found[i + 3]))
            for i in range(0, len(found), 4)
        ]

    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        if limit <= 0:
            return []
        try:
            found = await self._due(
                keys=[self.keys.due], args=[repr(now), limit, self.keys.session("")]
            )
        except RedisError as exc:
            raise store_error("cannot list the sessions due a reminder", exc) from exc
        return [str(key) for key in found]

    async def index_technicians(self) -> int:
        """Put the sessions saved before ``sessions_of`` existed in its index; how many.

        Done once per installation (``RedisKeys.technicians_indexed`` records it), by the
        first ``sweep`` of an instance: a ``SCAN`` of the session hashes, a script per
        batch. Saves meanwhile index themselves, so nothing is missed or undone.
        """
        k = self.keys
        if self._technicians_indexed:
            return 0
        indexed = 0
        try:
            if await self.client.exists(k.technicians_indexed):
                self._technicians_indexed = True
                return 0
            async for batch in self._session_batches():
                indexed += int(
                    await self._index_technicians(
                        keys=batch, args=[k.session(""), k.technician("")]
                    )
                )
            await self.client.set(k.technicians_indexed, "1")
        except RedisError as exc:
            raise store_error("cannot index the sessions by technician", exc) from exc
        self._technicians_indexed = True
        if indexed:
            log.info("indexed %d sessions saved before the index by technician", indexed)
        return indexed

    async def _session_batches(self) -> AsyncIterator[list[str]]:
        cursor = 0
        pattern = glob_escape(self.keys.session("")) + "*"
        while True:
            cursor, names = await self.client.scan(cursor, match=pattern, count=SWEEP_BATCH)
            if names:
                yield [str(name) for name in names]
            if int(cursor) == 0:
                return

    async def sweep(self, retention: Retention, now: float) -> Swept:
        k = self.keys
        sessions = snapshots = 0
        await self.index_technicians()
        try:
            for state in STATES:
                cutoff = repr(now - retention.ttl(state))
                while True:
                    seen, deleted = await self._sweep_sessions(
                        keys=[k.saved(state), k.recent, k.due],
                        args=[
                            cutoff,
                            SWEEP_BATCH,
                            k.session(""),
                            k.answers(""),
                            k.answer_versions(""),
                            k.technician(""),
                        ],
                    )
                    sessions += int(deleted)
                    if int(seen) < SWEEP_BATCH:
                        break
            while True:
                seen, deleted = await self._sweep_snapshots(
                    keys=[k.snapshot_deadlines()], args=[repr(now), SWEEP_BATCH, k.snapshot("")]
                )
                snapshots += int(deleted)
                if int(seen) < SWEEP_BATCH:
                    break
        except RedisError as exc:
            raise store_error("cannot sweep the session store", exc) from exc
        return Swept(sessions=sessions, snapshots=snapshots)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except RedisError as exc:
            raise store_error("the Redis session store is not reachable", exc) from exc

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()


# KEYS: lock, session, answers. ARGV: token, lifetime (ms), message id ('' for none).
_TAKE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
local row = redis.call('HMGET', KEYS[2], 'data', 'version')
local answer = false
if ARGV[3] ~= '' then answer = redis.call('HGET', KEYS[3], ARGV[3]) end
return {1, row[1], row[2], answer}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLock(SessionLock):
    """Leases in Redis: ``SET key token NX PX lifetime``, released and renewed by token.

    A waiter polls with a short, growing, jittered backoff (5 ms up to 100 ms).
    The script that takes the lease also reads the session and the replies
    stored for the turn's message id (``Lease.prefetched``), so a turn's lock,
    load and repeat check are one round trip; ``RedisStore.save`` releases the
    lease with the save, the second.
    """

    def __init__(
        self,
        client: Redis,
        keys: RedisKeys,
        *,
        lifetime: float = DEFAULT_LIFETIME,
        wait: float = DEFAULT_WAIT,
        renew: bool = True,
    ) -> None:
        super().__init__(lifetime=lifetime, wait=wait, renew=renew)
        self.client = client
        self.keys = keys
        self.lock_key = keys.lock
        self._take = client.register_script(_TAKE)
        self._release_script = client.register_script(_RELEASE)
        self._renew_script = client.register_script(_RENEW)

    async def _acquire(self, lease: Lease) -> None:
        key, k = lease.key, self.keys
        names = [k.lock(key), k.session(key), k.answers(key)]
        args: list[str | int] = [lease.token, self._lifetime_ms(), lease.message_id or ""]

        async def take() -> bool:
            try:
                taken = await self._take(keys=names, args=args)
            except RedisError as exc:
                raise lock_error(f"cannot lock session {key!r}", exc) from exc
            if int(taken[0]) != 1:
                return False
            _, data, version, answer = (*taken, None, None, None)[:4]
            stored = None if data is None else StoredSession(str(data), int(version))
            lease.prefetched = Prefetched(stored, lease.message_id, answer)
            return True

        await self._poll(key, take)

    async def _release(self, key: str, token: str) -> bool:
        try:
            return bool(await self._release_script(keys=[self.lock_key(key)], args=[token]))
        except RedisError as exc:
            raise lock_error(f"cannot release the lock on {key!r}", exc) from exc

    async def _renew(self, key: str, token: str) -> bool:
        try:
            return bool(
                await self._renew_script(
                    keys=[self.lock_key(key)], args=[token, self._lifetime_ms()]
                )
            )
        except RedisError as exc:
            raise lock_error(f"cannot renew the lock on {key!r}", exc) from exc

    def _lifetime_ms(self) -> int:
        return max(1, int(self.lifetime * 1000))


# KEYS: the seen keys of the ids. ARGV: ttl (ms). Returns 1 if none of them existed.
_FIRST = """
local new = 1
for _, key in ipairs(KEYS) do
    if not redis.call('SET', key, '1', 'NX', 'PX', ARGV[1]) then new = 0 end
end
return new
"""


class RedisSeen:
    """Processed ids in Redis, shared by every instance on the server: ``SET NX PX``.

    One id is one ``SET``; several are one script, so they are recorded together.
    """

    def __init__(self, client: Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._first = client.register_script(_FIRST)

    async def first(self, id: str, ttl: float, *, also: Sequence[str] = ()) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        try:
            if not also:
                return bool(await self.client.set(self.keys.seen(id), "1", nx=True, px=ttl_ms))
            names = [self.keys.seen(i) for i in (id, *also)]
            return int(await self._first(keys=names, args=[ttl_ms])) == 1
        except RedisError as exc:
            raise store_error(f"cannot check whether {id!r} was seen", exc) from exc


# KEYS: owner key, fence counter. ARGV: token, channel, cuid. Numbers the claim,
# sets the owner, announces "<fence> <token> <cuid>" and returns the fence. The
# fence is one more than the last, and at least the server's clock in microseconds:
# a server restarted without its counter still numbers new claims above old ones.
_CLAIM = """
local now = redis.call('TIME')
local clock = tonumber(now[1]) * 1000000 + tonumber(now[2])
local fence = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, clock)
redis.call('SET', KEYS[2], string.format('%d', fence))
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], string.format('%d', fence) .. ' ' .. ARGV[1] .. ' ' .. ARGV[3])
return fence
"""
#: Seconds the takeover subscriber waits before subscribing again after Redis failed.
RESUBSCRIBE_PAUSE = 1.0


class RedisOwners:
    """The owner of each CUID in Redis, announced on one pub/sub channel.

    ``claim`` numbers the claim from one counter (its fence; never below the Redis
    server's clock in microseconds, so a server restarted without its data still
    numbers new claims above those of connections still open), sets ``owner:<cuid>``
    to the connection's token and publishes ``<fence> <token> <cuid>`` on
    ``takeover``, in one script, so fences grow in the order Redis ran the claims.
    A subscriber hands each announcement on as it is: the bridge compares fences
    to keep the newer connection, however late an announcement arrives. The owner
    key has no TTL; ``release`` deletes it only while it still holds the releasing
    token, and a key an instance left behind by crashing is overwritten by the
    next claim.
    """

    shared = True

    def __init__(self, client: Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)

    async def claim(self, cuid: str, token: str) -> int:
        try:
            keys = [self.keys.owner(cuid), self.keys.owner_fence]
            return int(await self._claim(keys=keys, args=[token, self.keys.takeover, cuid]))
        except RedisError as exc:
            raise store_error("cannot record the owner of a connection", exc) from exc

    async def release(self, cuid: str, token: str) -> None:
        try:
            await self._release(keys=[self.keys.owner(cuid)], args=[token])
        except RedisError as exc:
            raise store_error("cannot release the owner of a connection", exc) from exc

    async def watch(self, taken: Taken) -> None:
        async def heard(data: str) -> None:
            claim = Announcement.parse(data)
            if claim is not None:
                await taken(claim.cuid, claim.token, claim.fence)

        await subscribe(self.client, self.keys.takeover, heard, "takeover")


async def subscribe(
    client: Redis, channel: str, heard: Callable[[str], Awaitable[None]], what: str
) -> None:
    """Call ``heard(data)`` for each message on ``channel``, until cancelled.

    A lost connection is logged (``what`` names the subscriber) and the
    subscription made again after ``RESUBSCRIBE_PAUSE``.
    """
    while True:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await heard(str(message["data"]))
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        except RedisError as exc:
            log.warning("the %s subscriber lost Redis (%s); subscribing again", what, exc)
            await asyncio.sleep(RESUBSCRIBE_PAUSE)


class RedisNotifier:
    """Sessions with notices waiting, announced on one pub/sub channel (``RedisKeys.notices``).

    Every instance subscribes (``watch``) and hands each key to its bridges; the
    notices themselves are in the session, so a message published while an
    instance was not subscribed loses nothing: it is delivered on the next
    connection or turn.
    """

    shared = True

    def __init__(self, client: Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys

    async def publish(self, key: str) -> None:
        try:
            await self.client.publish(self.keys.notices, key)
        except RedisError as exc:
            raise store_error("cannot announce a notice", exc) from exc

    async def watch(self, deliver: Deliver) -> None:
        async def heard(key: str) -> None:
            await hand_on(deliver, key)

        await subscribe(self.client, self.keys.notices, heard, "notice")
