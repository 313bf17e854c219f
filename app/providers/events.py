"""Providers' delivery events (`POST /provider-events/{client_slug}/{provider_name}`): the
provider is found by the tenant's slug and its own name, the request verified by its type
(`verify_events`), each event stored once (unique per provider and the provider's event id)
and applied: the delivery moves after `delivered` (app/notifications/provider_events.py),
and a hard bounce or a complaint suppresses the address (app/providers/suppressions.py).

Nothing is written for a request that is not verified. A request whose events were all
stored before (the provider retrying) changes nothing. Otherwise its nonce (Mailgun's token)
must be new: a signature that does not cover the body could else be reused with another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.db import Database
from app.core.errors import NotFound
from app.core.ids import new_id
from app.core.upsert import dialect_insert
from app.notifications import provider_events as delivery_moves
from app.providers import suppressions
from app.providers.base import ProviderEvent, SignatureRefused
from app.providers.models import Provider, ProviderEventRecord
from app.providers.nonces import NonceGuard
from app.tenants.models import Client

UNKNOWN = "No such provider events URL"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one request did: events stored, duplicates ignored, deliveries moved, addresses
    suppressed."""

    stored: int
    duplicates: int
    moved: int
    suppressed: int
    kinds: tuple[str, ...] = ()  # the stored events' kinds (metrics)


async def find_provider(db: Database, client_slug: str, name: str) -> Provider:
    """The tenant's provider at the URL, or 404 (one answer for an unknown tenant or
    provider, so the URL does not tell which exist)."""
    query = (
        select(Provider)
        .join(Client, col(Client.id) == col(Provider.client_id))
        .where(col(Client.slug) == client_slug, col(Provider.name) == name)
    )
    async with db.read_session() as session:
        found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound(UNKNOWN)
    return found


async def record(
    db: Database,
    provider: Provider,
    events: Sequence[ProviderEvent],
    *,
    nonces: NonceGuard,
    now: datetime,
) -> Recorded:
    """Store the verified events and apply the new ones, in one transaction.
    SignatureRefused when a new event's nonce was seen before (a replayed signature)."""
    if not events:
        return Recorded(0, 0, 0, 0)
    async with db.session() as session:
        known = await _known(session, provider.id, [e.event_id for e in events])
        new = [e for e in events if e.event_id not in known]
        for event in new:
            if event.nonce is not None and not await nonces.first_time(
                f"{provider.id}:{event.nonce}"
            ):
                raise SignatureRefused("this signature was used before (a replay)")
        stored = moved = suppressed = 0
        kinds: list[str] = []
        for event in new:
            if not await _store(session, provider, event, now):
                continue  # stored meanwhile by a concurrent request
            stored += 1
            kinds.append(event.kind)
            if event.delivery_id is not None:
                status = await delivery_moves.apply_event(
                    session,
                    provider.client_id,
                    event.delivery_id,
                    event.kind,
                    channel=provider.channel,
                    detail=event.detail,
                    now=now,
                )
                moved += status is not None
            reason = _suppression(event)
            if reason is not None and event.address:
                await suppressions.add(
                    session,
                    provider.client_id,
                    event.address,
                    reason=reason,
                    channel=provider.channel,
                    now=now,
                    detail=event.detail,
                    provider=provider.name,
                    delivery_id=event.delivery_id,
                )
                suppressed += 1
        await session.commit()
    return Recorded(stored, len(events) - stored, moved, suppressed, tuple(kinds))


def _suppression(event: ProviderEvent) -> str | None:
    if event.kind == "complained":
        return suppressions.COMPLAINT
    if event.kind == "bounced" and event.permanent:
        return suppressions.HARD_BOUNCE
    if event.kind == "failed" and event.permanent:
        return suppressions.UNDELIVERABLE
    return None


async def _known(session: AsyncSession, provider_id: str, event_ids: list[str]) -> set[str]:
    query = select(col(ProviderEventRecord.event_id)).where(
        col(ProviderEventRecord.provider_id) == provider_id,
        col(ProviderEventRecord.event_id).in_(event_ids),
    )
    return set((await session.execute(query)).scalars().all())


async def _store(
    session: AsyncSession, provider: Provider, event: ProviderEvent, now: datetime
) -> bool:
    """Insert the event unless (provider, event id) exists; whether it was inserted."""
    stmt = (
        dialect_insert(session, ProviderEventRecord.__table__)  # type: ignore[attr-defined]
        .values(
            id=new_id(),
            client_id=provider.client_id,
            provider_id=provider.id,
            event_id=event.event_id,
            kind=event.kind,
            delivery_id=event.delivery_id,
            address=event.address,
            permanent=event.permanent,
            detail=event.detail[:1000] if event.detail else None,
            payload=dict(event.payload),
            occurred_at=event.occurred_at,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["provider_id", "event_id"])
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
