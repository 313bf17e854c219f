"""Queries on api_keys. Every one is scoped by client id except the lookup by key id,
which is how a presented key finds its row before anyone knows its client."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from app.auth.models import ApiKey
from app.auth.principal import KeyKind


def _active(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(ApiKey.revoked_at).is_(None),
        or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > now),
    )


@dataclass(frozen=True, slots=True)
class KeyRow:
    """What authenticating a presented key reads of its row."""

    id: str
    client_id: str
    kind: str
    user_id: str | None
    scopes: list[str]
    secret_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None


# Built once (its cache key too): every key's first use and re-check runs it.
_KEY_ROW = select(
    col(ApiKey.id),
    col(ApiKey.client_id),
    col(ApiKey.kind),
    col(ApiKey.user_id),
    col(ApiKey.scopes),
    col(ApiKey.secret_hash),
    col(ApiKey.expires_at),
    col(ApiKey.revoked_at),
).where(col(ApiKey.id) == bindparam("key_id"))


async def find_by_key_id(conn: AsyncConnection, key_id: str) -> KeyRow | None:
    """The row a presented key names (primary-key lookup), as plain values: Core, no ORM
    identity map, since authentication runs on every first use and re-check of a key."""
    row = (await conn.execute(_KEY_ROW, {"key_id": key_id})).first()
    return None if row is None else KeyRow(*row)


async def states_by_key_ids(
    session: AsyncSession, key_ids: Sequence[str]
) -> Sequence[tuple[str, datetime | None, datetime | None]]:
    """(id, revoked_at, expires_at) of these keys, by primary key: open sockets' keys are
    re-checked this way (no client id yet known for all of them, like `find_by_key_id`)."""
    if not key_ids:
        return []
    result = await session.execute(
        select(col(ApiKey.id), col(ApiKey.revoked_at), col(ApiKey.expires_at)).where(
            col(ApiKey.id).in_(list(key_ids))
        )
    )
    return [(row[0], row[1], row[2]) for row in result.all()]


async def get(session: AsyncSession, client_id: str, key_id: str) -> ApiKey | None:
    """One key of the client."""
    row = await session.get(ApiKey, key_id)
    return row if row is not None and row.client_id == client_id else None


async def list_page(
    session: AsyncSession, client_id: str, limit: int, after: str | None, user_id: str | None
) -> Sequence[ApiKey]:
    """Keys of the client ordered by id, `limit + 1` of them after the cursor."""
    query = select(ApiKey).where(col(ApiKey.client_id) == client_id)
    if after:
        query = query.where(col(ApiKey.id) > after)
    if user_id:
        query = query.where(col(ApiKey.user_id) == user_id)
    result = await session.execute(query.order_by(col(ApiKey.id)).limit(limit + 1))
    return result.scalars().all()


def add(session: AsyncSession, key: ApiKey) -> None:
    """Stage a new key."""
    session.add(key)


async def revoke_user_keys(
    session: AsyncSession, client_id: str, user_id: str, now: datetime
) -> list[str]:
    """Revoke every live key of the user; return their ids."""
    result = await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.user_id) == user_id,
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(ApiKey.id))
    )
    return list(result.scalars().all())


async def revoke_device_keys(
    session: AsyncSession, client_id: str, user_id: str, device_ids: Sequence[str], now: datetime
) -> list[str]:
    """Revoke every live key of the user on these devices; return their ids."""
    if not device_ids:
        return []
    result = await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.user_id) == user_id,
            col(ApiKey.device_id).in_(list(device_ids)),
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(ApiKey.id))
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars().all())


async def live_devices(
    session: AsyncSession, client_id: str, user_id: str, now: datetime
) -> list[str]:
    """The user's devices holding a working key, least recently used first (last use,
    else issue time, of the device's newest key)."""
    used = func.max(func.coalesce(col(ApiKey.last_used_at), col(ApiKey.created_at)))
    result = await session.execute(
        select(col(ApiKey.device_id))
        .where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.user_id) == user_id,
            col(ApiKey.device_id).is_not(None),
            _active(now),
        )
        .group_by(col(ApiKey.device_id))
        .order_by(used, col(ApiKey.device_id))
    )
    return [str(d) for d in result.scalars().all()]


async def revoke(session: AsyncSession, client_id: str, key_id: str, now: datetime) -> bool:
    """Revoke one key of the client; False when it has no such live key."""
    result = await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.id) == key_id,
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(ApiKey.id))
    )
    return result.scalar_one_or_none() is not None


async def expire_master_keys(
    session: AsyncSession, client_id: str, at: datetime, keep_id: str, now: datetime
) -> list[str]:
    """Make every other live master key expire at `at` (sooner expiries stay); return ids."""
    result = await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.kind) == KeyKind.master.value,
            col(ApiKey.id) != keep_id,
            _active(now),
            or_(col(ApiKey.expires_at).is_(None), col(ApiKey.expires_at) > at),
        )
        .values(expires_at=at)
        .returning(col(ApiKey.id))
    )
    return list(result.scalars().all())


async def count_live_master_keys(session: AsyncSession, client_id: str, now: datetime) -> int:
    """How many master keys of the client still work."""
    result = await session.execute(
        select(col(ApiKey.id)).where(
            col(ApiKey.client_id) == client_id,
            col(ApiKey.kind) == KeyKind.master.value,
            _active(now),
        )
    )
    return len(result.scalars().all())


async def record_last_used(session: AsyncSession, used: dict[str, datetime]) -> None:
    """Write buffered last-use times (one UPDATE per key, in one transaction)."""
    for key_id, at in used.items():
        await session.execute(
            update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=at)
        )
