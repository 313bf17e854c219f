"""Suppressed addresses: a tenant's addresses that hard-bounced or complained, which later
sends skip (the e-mail channel asks at expansion, app/channels/email.py). Stored
lower-cased; the first reason recorded stays (a later bounce of a suppressed address adds
nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.upsert import dialect_insert
from app.providers.models import Suppression

HARD_BOUNCE = "hard_bounce"
COMPLAINT = "complaint"
# A number (SMS) the provider says can never receive: unknown, a landline, opted out.
UNDELIVERABLE = "undeliverable"
# What a skipped delivery's `skip_reason` says, by reason.
SKIP_REASONS = {
    HARD_BOUNCE: "suppressed: hard bounce",
    COMPLAINT: "suppressed: complaint",
    UNDELIVERABLE: "suppressed: undeliverable",
}
# Addresses per lookup statement (bounded parameter lists on both databases).
_LOOKUP_CHUNK = 1000


async def add(
    session: AsyncSession,
    client_id: str,
    address: str,
    *,
    reason: str,
    channel: str,
    now: datetime,
    detail: str | None = None,
    provider: str | None = None,
    delivery_id: str | None = None,
) -> None:
    """Suppress `address` for the client, unless it already is (the first reason stays)."""
    stmt = (
        dialect_insert(session, Suppression.__table__)  # type: ignore[attr-defined]
        .values(
            client_id=client_id,
            address=address.lower(),
            channel=channel,
            reason=reason,
            detail=detail[:1000] if detail else None,
            provider=provider,
            delivery_id=delivery_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["client_id", "address"])
    )
    await session.execute(stmt)


async def reasons_for(
    session: AsyncSession, client_id: str, addresses: Sequence[str]
) -> dict[str, str]:
    """Of `addresses` (any case), the suppressed ones (lower-cased) and why."""
    wanted = sorted({a.lower() for a in addresses})
    found: dict[str, str] = {}
    for i in range(0, len(wanted), _LOOKUP_CHUNK):
        query = select(col(Suppression.address), col(Suppression.reason)).where(
            col(Suppression.client_id) == client_id,
            col(Suppression.address).in_(wanted[i : i + _LOOKUP_CHUNK]),
        )
        found.update({a: r for a, r in (await session.execute(query)).all()})
    return found


async def list_page(
    session: AsyncSession, client_id: str, *, limit: int, after: str | None
) -> list[Suppression]:
    """`limit + 1` suppressions by address after the cursor (an address)."""
    query = select(Suppression).where(col(Suppression.client_id) == client_id)
    if after:
        query = query.where(col(Suppression.address) > after.lower())
    query = query.order_by(col(Suppression.address)).limit(limit + 1)
    return list((await session.execute(query)).scalars().all())


async def remove(session: AsyncSession, client_id: str, address: str) -> bool:
    """Lift the client's suppression of `address`; whether there was one."""
    result = await session.execute(
        delete(Suppression).where(
            col(Suppression.client_id) == client_id,
            col(Suppression.address) == address.lower(),
        )
    )
    return bool(getattr(result, "rowcount", 0))
