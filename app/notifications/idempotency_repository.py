"""Idempotency records of `POST /notifications/send`: a key names the notification it
created for IDEMPOTENCY_TTL_SECONDS; a retry with the same key finds it instead of sending
again. Scoped by client id, except the retention purge (all clients).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.native_sql import session_query
from app.core.upsert import dialect_insert
from app.notifications.models import IdempotencyRecord, Notification

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


async def reserve(
    session: AsyncSession,
    client_id: str,
    key: str,
    *,
    request_hash: str,
    notification_id: str,
    now: datetime,
    ttl_seconds: int = IDEMPOTENCY_TTL_SECONDS,
) -> bool:
    """Take `key` for `notification_id`; False when a live record already holds it.

    One `INSERT … ON CONFLICT DO UPDATE … WHERE expires_at <= now`: an expired record is
    replaced in place, a live one is left alone. On PostgreSQL a concurrent send with the
    same key waits for the first transaction and then sees the conflict.
    """
    stmt = dialect_insert(session, IdempotencyRecord).values(
        client_id=client_id,
        key=key,
        request_hash=request_hash,
        notification_id=notification_id,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["client_id", "key"],
        set_={
            "request_hash": stmt.excluded.request_hash,
            "notification_id": stmt.excluded.notification_id,
            "created_at": stmt.excluded.created_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=col(IdempotencyRecord.expires_at) <= now,
    ).returning(col(IdempotencyRecord.key))
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def find(
    session: AsyncSession, client_id: str, key: str, *, now: datetime
) -> tuple[IdempotencyRecord, Notification] | None:
    """The live (unexpired) record for `key` and the notification it created."""
    query = (
        select(IdempotencyRecord, Notification)
        .join(Notification, col(Notification.id) == col(IdempotencyRecord.notification_id))
        .where(
            col(IdempotencyRecord.client_id) == client_id,
            col(IdempotencyRecord.key) == key,
            col(IdempotencyRecord.expires_at) > now,
            col(Notification.client_id) == client_id,
        )
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row is not None else None


_HELD_PG = """
SELECT r.request_hash, r.notification_id FROM idempotency_records r
JOIN notifications n ON n.id = r.notification_id AND n.client_id = $1
WHERE r.client_id = $1 AND r.key = $2 AND r.expires_at > $3
""".strip()


async def held(
    session: AsyncSession, client_id: str, key: str, *, now: datetime
) -> tuple[str, str] | None:
    """`find`'s answer as (request hash, notification id): on PostgreSQL one driver
    statement, without building the ORM query and objects (a keyed send's hot path)."""
    if session.get_bind().dialect.name != "postgresql":
        found = await find(session, client_id, key, now=now)
        return (found[0].request_hash, found[1].id) if found is not None else None
    rows = await session_query(session)(_HELD_PG, [client_id, key, now])
    return (str(rows[0][0]), str(rows[0][1])) if rows else None


async def purge_expired(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Delete up to `limit` expired records (all clients: a retention task); how many."""
    doomed = (
        select(col(IdempotencyRecord.client_id), col(IdempotencyRecord.key))
        .where(col(IdempotencyRecord.expires_at) <= now)
        .order_by(col(IdempotencyRecord.expires_at))
        .limit(limit)
    )
    result = await session.execute(
        delete(IdempotencyRecord)
        .where(tuple_(col(IdempotencyRecord.client_id), col(IdempotencyRecord.key)).in_(doomed))
        .returning(col(IdempotencyRecord.key))
        .execution_options(synchronize_session=False)
    )
    return len(result.all())
