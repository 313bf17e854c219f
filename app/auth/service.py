"""Issuing, listing and revoking keys. Callers commit, then announce revocations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.models import ApiKey
from app.auth.principal import KeyKind
from app.auth.secrets import hash_secret, new_key
from app.core.clock import utcnow
from app.core.errors import Conflict, NotFound


async def issue_key(
    session: AsyncSession,
    *,
    client_id: str,
    kind: KeyKind,
    rounds: int,
    user_id: str | None = None,
    scopes: Sequence[str] = (),
    expires_at: datetime | None = None,
) -> tuple[str, ApiKey]:
    """Stage a new key; return the presented string (shown once) and its row."""
    presented, parts = new_key()
    secret_hash = await asyncio.to_thread(hash_secret, parts.secret, rounds)
    row = ApiKey(
        id=parts.key_id,
        client_id=client_id,
        kind=kind.value,
        user_id=user_id,
        scopes=sorted(scopes),
        secret_hash=secret_hash,
        expires_at=expires_at,
    )
    repository.add(session, row)
    return presented, row


async def revoke_user_keys(session: AsyncSession, client_id: str, user_id: str) -> list[str]:
    """Revoke every live key of a user (login rotation, user deletion); return their ids."""
    return await repository.revoke_user_keys(session, client_id, user_id, utcnow())


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
    session: AsyncSession, client_id: str, grace_seconds: int, rounds: int
) -> tuple[str, datetime, list[str]]:
    """A new master key; every other master key expires after the grace. Returns
    (new key, when the old ones expire, their ids)."""
    presented, row = await issue_key(
        session, client_id=client_id, kind=KeyKind.master, rounds=rounds
    )
    now = utcnow()
    expire_at = now + timedelta(seconds=grace_seconds)
    old_ids = await repository.expire_master_keys(session, client_id, expire_at, row.id, now)
    return presented, expire_at, old_ids


async def list_keys(
    session: AsyncSession, client_id: str, limit: int, after: str | None, user_id: str | None
) -> Sequence[ApiKey]:
    """A page of the client's keys (`limit + 1` rows)."""
    return await repository.list_page(session, client_id, limit, after, user_id)
