"""Queries on a client's outbound webhook endpoints, always scoped by client id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.webhooks.models import WebhookEndpoint

# Fields a PATCH may change; secrets, failure tracking and ids change only through the
# dedicated calls below.
UPDATABLE = frozenset({"url", "description", "event_types", "disabled", "disabled_reason"})


async def add(session: AsyncSession, client_id: str, endpoint: WebhookEndpoint) -> None:
    """Insert a new endpoint of the client."""
    if endpoint.client_id != client_id:
        raise ValueError("endpoint belongs to another client")
    session.add(endpoint)
    await session.flush()


async def get(session: AsyncSession, client_id: str, endpoint_id: str) -> WebhookEndpoint | None:
    """One endpoint of the client."""
    query = select(WebhookEndpoint).where(
        col(WebhookEndpoint.client_id) == client_id, col(WebhookEndpoint.id) == endpoint_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession, client_id: str, *, limit: int, after: str | None = None
) -> list[WebhookEndpoint]:
    """`limit + 1` endpoints by id after the cursor."""
    query = select(WebhookEndpoint).where(col(WebhookEndpoint.client_id) == client_id)
    if after:
        query = query.where(col(WebhookEndpoint.id) > after)
    query = query.order_by(col(WebhookEndpoint.id)).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


async def by_ids(
    session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
) -> list[WebhookEndpoint]:
    """The client's endpoints among `endpoint_ids` (others' ids are simply absent)."""
    if not endpoint_ids:
        return []
    query = (
        select(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.id).in_(endpoint_ids),
        )
        .order_by(col(WebhookEndpoint.id))
    )
    return list((await session.execute(query)).scalars().all())


async def subscribed(
    session: AsyncSession, client_id: str, event_type: str
) -> list[WebhookEndpoint]:
    """The client's enabled endpoints that receive `event_type` (empty list = every type).

    A client has a handful of endpoints, so the subscription test runs here rather than
    as JSON containment, which SQLite and PostgreSQL spell differently.
    """
    query = (
        select(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.disabled).is_(False),
        )
        .order_by(col(WebhookEndpoint.id))
    )
    rows = (await session.execute(query)).scalars().all()
    return [e for e in rows if not e.event_types or event_type in e.event_types]


async def update_fields(
    session: AsyncSession, client_id: str, endpoint_id: str, *, now: datetime, **values: Any
) -> WebhookEndpoint | None:
    """Change the given PATCH-able fields; the updated endpoint, or None if not found."""
    unknown = set(values) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return await _update(session, client_id, endpoint_id, {**values, "updated_at": now})


async def _update(
    session: AsyncSession, client_id: str, endpoint_id: str, values: dict[str, Any]
) -> WebhookEndpoint | None:
    stmt = (
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.client_id) == client_id, col(WebhookEndpoint.id) == endpoint_id)
        .values(**values)
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_endpoint(session: AsyncSession, client_id: str, endpoint_id: str) -> bool:
    """Delete an endpoint; False when there was none."""
    result = await session.execute(
        delete(WebhookEndpoint)
        .where(col(WebhookEndpoint.client_id) == client_id, col(WebhookEndpoint.id) == endpoint_id)
        .returning(col(WebhookEndpoint.id))
    )
    return result.scalar_one_or_none() is not None


async def rotate_secret(
    session: AsyncSession,
    client_id: str,
    endpoint_id: str,
    *,
    new_secret_sealed: str,
    previous_valid_until: datetime,
    now: datetime,
) -> WebhookEndpoint | None:
    """Install a new secret; the current one keeps signing until `previous_valid_until`."""
    return await _update(
        session,
        client_id,
        endpoint_id,
        {
            "previous_secret_sealed": col(WebhookEndpoint.secret_sealed),
            "previous_secret_expires_at": previous_valid_until,
            "secret_sealed": new_secret_sealed,
            "updated_at": now,
        },
    )


async def record_failure(
    session: AsyncSession, client_id: str, endpoint_id: str, *, now: datetime
) -> WebhookEndpoint | None:
    """Count a failed attempt; `failing_since` keeps the start of the unbroken run."""
    return await _update(
        session,
        client_id,
        endpoint_id,
        {
            "failing_since": func.coalesce(col(WebhookEndpoint.failing_since), now),
            "failure_count": col(WebhookEndpoint.failure_count) + 1,
        },
    )


async def record_success(session: AsyncSession, client_id: str, endpoint_id: str) -> None:
    """End a run of failures (writes only when there was one)."""
    await session.execute(
        update(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.id) == endpoint_id,
            col(WebhookEndpoint.failure_count) > 0,
        )
        .values(failing_since=None, failure_count=0)
        .execution_options(synchronize_session=False)
    )


async def record_successes(
    session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
) -> None:
    """`record_success` for several endpoints in one UPDATE (the finisher's batch)."""
    if not endpoint_ids:
        return
    await session.execute(
        update(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.id).in_(sorted(endpoint_ids)),
            col(WebhookEndpoint.failure_count) > 0,
        )
        .values(failing_since=None, failure_count=0)
        .execution_options(synchronize_session=False)
    )


async def disable(
    session: AsyncSession, client_id: str, endpoint_id: str, *, reason: str, now: datetime
) -> bool:
    """Disable an enabled endpoint; True only for the call that disabled it.

    The service emits `endpoint.disabled` once, on True, however many workers race here.
    """
    result = await session.execute(
        update(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.id) == endpoint_id,
            col(WebhookEndpoint.disabled).is_(False),
        )
        .values(disabled=True, disabled_reason=reason, updated_at=now)
        .returning(col(WebhookEndpoint.id))
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none() is not None


async def enable(
    session: AsyncSession, client_id: str, endpoint_id: str, *, now: datetime
) -> WebhookEndpoint | None:
    """Re-enable a disabled endpoint and forget its failure run; None when it was not disabled.

    An enabled endpoint keeps its run, so a PATCH repeating `disabled: false` cannot keep a
    failing endpoint from ever being disabled.
    """
    stmt = (
        update(WebhookEndpoint)
        .where(
            col(WebhookEndpoint.client_id) == client_id,
            col(WebhookEndpoint.id) == endpoint_id,
            col(WebhookEndpoint.disabled).is_(True),
        )
        .values(
            disabled=False,
            disabled_reason=None,
            failing_since=None,
            failure_count=0,
            updated_at=now,
        )
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
