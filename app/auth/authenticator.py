"""Authentication of presented keys, off the bcrypt hot path, with revocation everywhere.

A verified key is cached by the SHA-256 of the presented string. Revocation drops it from
every process at once (the broadcast), and a cached entry re-reads its row every
`RECHECK_SECONDS` (an indexed read, no bcrypt) in case a broadcast was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import math
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime

import orjson
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter, RateLimiter

from app.auth import connect_tokens, repository
from app.auth.principal import ALL_SCOPES, KeyKind, Principal
from app.auth.secrets import fingerprint, parse_key, verify_secret
from app.core.broadcast import Broadcast
from app.core.clock import monotonic, utcnow
from app.core.db import Database
from app.core.errors import RateLimited, Unauthorized
from app.core.executors import run_in
from app.ratelimit.fail_open import FailOpen

log = logging.getLogger("chatapi.auth")

REVOKED_CHANNEL = "auth.revoked"
RECHECK_SECONDS = 5.0
LAST_USED_FLUSH_SECONDS = 15.0
WRONG_SECRETS_PER_MINUTE = RateLimitItemPerMinute(10)

RevocationListener = Callable[[list[str]], Awaitable[None]]
KEY_STATES_BATCH = 500


@dataclass(frozen=True, slots=True)
class KeyState:
    """What decides whether a key still works (its row, without the secret)."""

    key_id: str
    revoked_at: datetime | None
    expires_at: datetime | None


class Authenticator:
    """Turns a presented key into a Principal; one per API process."""

    def __init__(
        self,
        db: Database,
        broadcast: Broadcast,
        limiter: RateLimiter,
        admin_key: str | None,
        bcrypt_pool: Executor,
        fail_open: FailOpen | None = None,
    ) -> None:
        from app.auth.cache import VerifiedKeyCache

        self._db = db
        self._broadcast = broadcast
        self._limiter = limiter
        # Counts wrong secrets while the shared limiter's storage (Redis) does not answer.
        self._local_limiter = MovingWindowRateLimiter(MemoryStorage())
        self._fail_open = fail_open or FailOpen()
        self._admin_key = admin_key
        self._bcrypt_pool = bcrypt_pool
        self.cache = VerifiedKeyCache()
        self._listeners: list[RevocationListener] = []
        self._changed_listeners: list[RevocationListener] = []
        self._last_used: dict[str, datetime] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._verifying: dict[tuple[str, str], asyncio.Future[bool]] = {}

    async def start(self) -> None:
        """Listen for revocations and start the last-used flusher."""
        await self._broadcast.subscribe(REVOKED_CHANNEL, self._on_revoked_message)
        self._flusher = asyncio.create_task(self._flush_forever(), name="keys-last-used")

    async def stop(self) -> None:
        """Stop listening and write what is buffered."""
        await self._broadcast.unsubscribe(REVOKED_CHANNEL, self._on_revoked_message)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush_last_used()

    def on_revoked(self, listener: RevocationListener) -> None:
        """Call `listener(key_ids)` in every process when keys are revoked (gateways close sockets)."""
        self._listeners.append(listener)

    def on_changed(self, listener: RevocationListener) -> None:
        """Call `listener(key_ids)` in every process when keys changed (e.g. a rotation gave
        them an expiry): open sockets of these keys must learn it."""
        self._changed_listeners.append(listener)

    async def key_states(self, key_ids: list[str]) -> dict[str, KeyState]:
        """The rows of these keys by id, read in batches of indexed lookups (no bcrypt);
        a key missing from the answer no longer exists."""
        found: dict[str, KeyState] = {}
        for start in range(0, len(key_ids), KEY_STATES_BATCH):
            batch = key_ids[start : start + KEY_STATES_BATCH]
            async with self._db.read_session() as session:
                rows = await repository.states_by_key_ids(session, batch)
            for key_id, revoked_at, expires_at in rows:
                found[key_id] = KeyState(key_id, revoked_at, expires_at)
        return found

    async def announce_revoked(self, key_ids: list[str]) -> None:
        """Tell every process these keys no longer work (call after the commit)."""
        if key_ids:
            message = {"ids": key_ids, "revoked": True}
            await self._broadcast.publish(REVOKED_CHANNEL, orjson.dumps(message))

    async def announce_changed(self, key_ids: list[str]) -> None:
        """Tell every process to re-read these keys (e.g. a new expiry) on their next use."""
        if key_ids:
            message = {"ids": key_ids, "revoked": False}
            await self._broadcast.publish(REVOKED_CHANNEL, orjson.dumps(message))

    async def authenticate(self, presented: str) -> Principal:
        """The caller behind `presented`, or Unauthorized / RateLimited."""
        if self._admin_key and hmac.compare_digest(presented.encode(), self._admin_key.encode()):
            return Principal(kind=KeyKind.admin, key_id="admin")
        if connect_tokens.is_connect_token(presented):
            raise Unauthorized(
                'A connect token only opens a socket (Socket.IO auth={"token"}, WebSocket '
                "?token=); send an API key here"
            )
        fp = fingerprint(presented)
        cached = self.cache.get(fp)
        now = utcnow()
        if cached is not None:
            principal = cached.principal
            if principal.expires_at is not None and principal.expires_at <= now:
                self.cache.drop(fp)
                raise Unauthorized("The API key has expired")
            if monotonic() - cached.checked_at < RECHECK_SECONDS:
                self._last_used[principal.key_id] = now
                return principal
        parts = parse_key(presented)
        if parts is None:
            raise Unauthorized("Malformed API key")
        async with self._db.read_connection() as conn:
            row = await repository.find_by_key_id(conn, parts.key_id)
        if row is None:
            raise Unauthorized()
        self._check_live(row, now, fp)
        principal = _principal(row)
        # Re-read the cache: a concurrent first use may have verified this very string while
        # this one read the row (its flight is over by now, so it would verify again).
        if cached is None and self.cache.get(fp) is None:
            await self._verify_secret(parts.key_id, parts.secret, row.secret_hash, fp, principal)
        self.cache.put(fp, principal)
        self._last_used[principal.key_id] = now
        return principal

    async def redeem_connect_token(self, token: str) -> Principal:
        """The principal a socket presenting a connect token runs as; uses the token up.
        Refused when the key that minted it has been revoked or has expired since."""
        async with self._db.session() as session:
            principal = await connect_tokens.redeem(session, token)
        state = (await self.key_states([principal.key_id])).get(principal.key_id)
        if state is None or state.revoked_at is not None:
            raise Unauthorized("The key that minted this connect token has been revoked")
        if state.expires_at is not None and state.expires_at <= utcnow():
            raise Unauthorized("The key that minted this connect token has expired")
        return dataclasses.replace(principal, expires_at=state.expires_at)

    def remember_issued(self, presented: str, principal: Principal) -> None:
        """Believe a key this process has just issued without hashing its secret again.

        Login is followed by the client's first request or socket connect, where the
        bcrypt verify would be most of the CPU. The entry is put as never checked, so that
        first use still re-reads the row: a revocation that raced the login (or one this
        process never heard of) still refuses the key.
        """
        self.cache.put(fingerprint(presented), principal, checked_at=-math.inf)

    async def logged_in(
        self,
        presented: str,
        *,
        client_id: str,
        user_id: str,
        scopes: list[str],
        expires_at: datetime | None,
        revoked: list[str],
    ) -> None:
        """After a login's commit: announce the keys it revoked, remember the one it issued."""
        await self.announce_revoked(revoked)
        issued = parse_key(presented)
        if issued is not None:
            self.remember_issued(
                presented,
                Principal(
                    kind=KeyKind.user,
                    key_id=issued.key_id,
                    client_id=client_id,
                    user_id=user_id,
                    scopes=frozenset(scopes),
                    expires_at=expires_at,
                ),
            )

    def _check_live(self, row: repository.KeyRow, now: datetime, fp: str) -> None:
        if row.revoked_at is not None:
            self.cache.drop(fp)
            raise Unauthorized("The API key has been revoked")
        if row.expires_at is not None and row.expires_at <= now:
            self.cache.drop(fp)
            raise Unauthorized("The API key has expired")

    async def _verify_secret(
        self, key_id: str, secret: str, secret_hash: str, fp: str, principal: Principal
    ) -> None:
        # Concurrent first uses of one key (a page's parallel requests) share one verify, so
        # a fresh key costs one bcrypt and one count against the limit, not one per request.
        flight = (key_id, secret)
        pending = self._verifying.get(flight)
        if pending is None:
            pending = asyncio.ensure_future(
                self._counted_verify(key_id, secret, secret_hash, fp, principal)
            )
            self._verifying[flight] = pending
            pending.add_done_callback(lambda _: self._verifying.pop(flight, None))
        # Shielded: one waiter going away must not cancel the verify the others wait on.
        if not await asyncio.shield(pending):
            raise Unauthorized()

    async def _counted_verify(
        self, key_id: str, secret: str, secret_hash: str, fp: str, principal: Principal
    ) -> bool:
        # Count the attempt before the verify, not after a failure: testing first and hitting
        # later let any number of concurrent wrong secrets pass the test and each run bcrypt.
        # A success keeps its hit (the moving window cannot take one back, and clearing it
        # would wipe an attacker's count too): verified keys are cached and concurrent first
        # uses share one verify, so a working key spends about one of the ten per process.
        if not await self._hit_verify_limit(key_id):
            raise RateLimited(
                "Too many wrong secrets for this key id: at most "
                f"{WRONG_SECRETS_PER_MINUTE.amount} per minute are verified",
                retry_after=60,
            )
        # In bcrypt's own bounded pool: no other kind of blocking work can delay a login.
        verified = await run_in(self._bcrypt_pool, verify_secret, secret, secret_hash)
        if verified:
            # Cached before the flight ends: a use that reads the row after the flight is
            # gone (and before its waiters resume) must find the key verified, not verify
            # it again.
            self.cache.put(fp, principal)
        return verified

    async def _hit_verify_limit(self, key_id: str) -> bool:
        # Redis down: the limit is counted in this process instead of failing the request
        # (it was a 500) or letting every guess run bcrypt. A key used in several processes
        # then gets ten verifies a minute in each, as a bound on bcrypt it still holds.
        try:
            allowed = await self._limiter.hit(WRONG_SECRETS_PER_MINUTE, "wrong-secret", key_id)
        except Exception as exc:
            self._fail_open.failed("wrong_secret", exc)
            return await self._local_limiter.hit(WRONG_SECRETS_PER_MINUTE, "wrong-secret", key_id)
        self._fail_open.succeeded()
        return allowed

    async def _on_revoked_message(self, message: bytes) -> None:
        body = orjson.loads(message)
        key_ids = [str(k) for k in body["ids"]]
        self.cache.drop_key_ids(key_ids)
        listeners = self._listeners if body["revoked"] else self._changed_listeners
        for listener in list(listeners):
            try:
                await listener(key_ids)
            except Exception:
                log.exception("key change listener failed")

    async def flush_last_used(self) -> None:
        """Write buffered last-use times in one transaction."""
        if not self._last_used:
            return
        used, self._last_used = self._last_used, {}
        try:
            async with self._db.session() as session:
                await repository.record_last_used(session, used)
                await session.commit()
        except Exception:
            log.exception("could not record key last use")

    def pending_last_used(self, key_id: str) -> datetime | None:
        """A use not yet written, so listings can show it."""
        return self._last_used.get(key_id)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(LAST_USED_FLUSH_SECONDS)
            await self.flush_last_used()


def _principal(row: repository.KeyRow) -> Principal:
    kind = KeyKind(row.kind)
    return Principal(
        kind=kind,
        key_id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        scopes=ALL_SCOPES if kind is KeyKind.master else frozenset(row.scopes),
        expires_at=row.expires_at,
    )
