"""Users' push subscriptions: Web Push subscriptions and FCM tokens, one row per
(user, endpoint)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.providers.models import PushSubscription


def endpoint_hash(endpoint: str) -> str:
    """The unique key's half for an endpoint (hex SHA-256): endpoints are too long for a
    portable unique index."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


async def get_by_endpoint(
    session: AsyncSession, client_id: str, user_id: str, endpoint: str
) -> PushSubscription | None:
    """The user's subscription with this endpoint (or token), if any."""
    query = select(PushSubscription).where(
        col(PushSubscription.client_id) == client_id,
        col(PushSubscription.user_id) == user_id,
        col(PushSubscription.endpoint_hash) == endpoint_hash(endpoint),
    )
    return (await session.execute(query)).scalar_one_or_none()


async def count_for_user(session: AsyncSession, client_id: str, user_id: str) -> int:
    """How many subscriptions the user has."""
    query = select(func.count()).where(
        col(PushSubscription.client_id) == client_id,
        col(PushSubscription.user_id) == user_id,
    )
    return int((await session.execute(query)).scalar_one())


async def add_unless_present(session: AsyncSession, row: PushSubscription) -> bool:
    """Insert `row` unless the user already has its endpoint; whether it was inserted (two
    concurrent registrations of one endpoint store one row, neither fails)."""
    values = row.model_dump()
    stmt = (
        dialect_insert(session, PushSubscription)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["user_id", "endpoint_hash"])
        .returning(col(PushSubscription.id))
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def list_for_user(
    session: AsyncSession, client_id: str, user_id: str
) -> list[PushSubscription]:
    """The user's subscriptions, oldest first."""
    query = (
        select(PushSubscription)
        .where(
            col(PushSubscription.client_id) == client_id,
            col(PushSubscription.user_id) == user_id,
        )
        .order_by(col(PushSubscription.id))
    )
    return list((await session.execute(query)).scalars())


async def delete_for_user(
    session: AsyncSession, client_id: str, user_id: str, subscription_id: str
) -> bool:
    """Remove one of the user's subscriptions; False when the user has no such one."""
    result = await session.execute(
        delete(PushSubscription)
        .where(
            col(PushSubscription.id) == subscription_id,
            col(PushSubscription.client_id) == client_id,
            col(PushSubscription.user_id) == user_id,
        )
        .returning(col(PushSubscription.id))
    )
    return result.scalar_one_or_none() is not None


async def users_with_subscriptions(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> set[str]:
    """Which of `user_ids` have at least one subscription (one query)."""
    if not user_ids:
        return set()
    query = (
        select(col(PushSubscription.user_id))
        .where(
            col(PushSubscription.client_id) == client_id,
            col(PushSubscription.user_id).in_(sorted(set(user_ids))),
        )
        .distinct()
    )
    return set((await session.execute(query)).scalars())


async def for_users(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> list[PushSubscription]:
    """Every subscription of `user_ids`, by user then age (one query)."""
    if not user_ids:
        return []
    query = (
        select(PushSubscription)
        .where(
            col(PushSubscription.client_id) == client_id,
            col(PushSubscription.user_id).in_(sorted(set(user_ids))),
        )
        .order_by(col(PushSubscription.user_id), col(PushSubscription.id))
    )
    return list((await session.execute(query)).scalars())


async def delete_ids(session: AsyncSession, client_id: str, ids: Sequence[str]) -> int:
    """Remove the client's subscriptions among `ids` (the push service said they are gone);
    how many were removed."""
    if not ids:
        return 0
    result = await session.execute(
        delete(PushSubscription)
        .where(
            col(PushSubscription.client_id) == client_id,
            col(PushSubscription.id).in_(sorted(set(ids))),
        )
        .returning(col(PushSubscription.id))
    )
    return len(result.scalars().all())
