"""Issuing, listing and revoking keys. Callers commit, then announce revocations.

A new key's secret is hashed (`new_hashed_key`) before the caller's write transaction
opens: bcrypt costs ~0.25 s at cost 12, and on SQLite a write transaction (BEGIN IMMEDIATE)
holds the only write lock, so hashing inside it would stall every other writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.models import ApiKey
from app.auth.principal import KeyKind
from app.auth.secrets import hash_secret, new_key
from app.core import executors
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class HashedKey:
    """A fresh key: the presented string (shown once), its id and its secret's hash."""

    presented: str
    key_id: str
    secret_hash: str


async def new_hashed_key(rounds: int) -> HashedKey:
    """Make a key and hash its secret off the event loop, in the bcrypt pool of the runtime
    on this loop. Call it before the session's first query, so no transaction (no lock) is
    open while bcrypt runs."""
    presented, parts = new_key()
    secret_hash = await executors.run_in(
        executors.current().bcrypt, hash_secret, parts.secret, rounds
    )
    return HashedKey(presented, parts.key_id, secret_hash)


def issue_key(
    session: AsyncSession,
    key: HashedKey,
    *,
    client_id: str,
    kind: KeyKind,
    user_id: str | None = None,
    scopes: Sequence[str] = (),
    expires_at: datetime | None = None,
    device_id: str | None = None,
) -> ApiKey:
    """Stage the row of a key hashed beforehand (`new_hashed_key`)."""
    row = ApiKey(
        id=key.key_id,
        client_id=client_id,
        kind=kind.value,
        user_id=user_id,
        scopes=sorted(scopes),
        secret_hash=key.secret_hash,
        expires_at=expires_at,
        device_id=device_id,
    )
    repository.add(session, row)
    return row


async def revoke_user_keys(session: AsyncSession, client_id: str, user_id: str) -> list[str]:
    """Revoke every live key of a user (login rotation, user deletion); return their ids."""
    return await repository.revoke_user_keys(session, client_id, user_id, utcnow())


async def rotate_device(
    session: AsyncSession, client_id: str, user_id: str, device_id: str, max_devices: int
) -> list[str]:
    """Revoke the user's keys on `device_id`, and the least recently used other devices'
    keys past `max_devices - 1` (room for this device's new key); return the ids."""
    now = utcnow()
    revoked = await repository.revoke_device_keys(session, client_id, user_id, [device_id], now)
    others = await repository.live_devices(session, client_id, user_id, now)
    excess = len(others) + 1 - max_devices
    if excess > 0:
        revoked += await repository.revoke_device_keys(
            session, client_id, user_id, others[:excess], now
        )
    return revoked


async def revoke_key(session: AsyncSession, client_id: str, key_id: str) -> None:
    """Revoke one key and commit; refuse to revoke the client's last working master key."""
    row = await repository.get(session, client_id, key_id)
    if row is None:
        raise NotFound("No such API key")
    now = utcnow()
    if (
        row.kind == KeyKind.master.value
        and row.revoked_at is None
        and await repository.count_live_master_keys(session, client_id, now) <= 1
    ):
        raise Conflict("This is the client's only master key; rotate it instead")
    await repository.revoke(session, client_id, key_id, now)
    await session.commit()


async def revoke_presented(session: AsyncSession, client_id: str, key_id: str) -> None:
    """Revoke the caller's own key (logout)."""
    await repository.revoke(session, client_id, key_id, utcnow())


async def rotate_master(
    session: AsyncSession, client_id: str, grace_seconds: int, key: HashedKey
) -> tuple[str, datetime, list[str]]:
    """`key` (hashed beforehand) becomes a master key; every other master key expires after
    the grace. Returns (new key, when the old ones expire, their ids)."""
    row = issue_key(session, key, client_id=client_id, kind=KeyKind.master)
    now = utcnow()
    expire_at = now + timedelta(seconds=grace_seconds)
    old_ids = await repository.expire_master_keys(session, client_id, expire_at, row.id, now)
    return key.presented, expire_at, old_ids


async def list_keys(
    session: AsyncSession, client_id: str, limit: int, after: str | None, user_id: str | None
) -> Sequence[ApiKey]:
    """A page of the client's keys (`limit + 1` rows)."""
    return await repository.list_page(session, client_id, limit, after, user_id)
