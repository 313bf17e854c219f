"""Webhook endpoints on both databases: CRUD, subscriptions, rotation, failure tracking."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core.clock import ManualClock
from app.core.db import Database
from app.core.ids import new_id
from app.webhooks import repository as endpoints
from app.webhooks.models import WebhookEndpoint


async def _add(db: Database, client_id: str, event_types: list[str], **extra: object) -> str:
    endpoint = WebhookEndpoint(
        id=new_id(),
        client_id=client_id,
        url="https://example.com/hook",
        event_types=event_types,
        secret_sealed="sealed-1",
        **extra,
    )
    async with db.session() as session:
        await endpoints.add(session, client_id, endpoint)
        await session.commit()
    return endpoint.id


async def test_endpoints_are_created_read_updated_and_deleted_within_their_client(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    first = await _add(db, client_id, ["order.shipped"])
    second = await _add(db, client_id, [])
    foreign = await _add(db, other_client_id, [])
    async with db.session() as session:
        page = await endpoints.list_page(session, client_id, limit=1)
        assert [e.id for e in page] == [first, second]
        assert [e.id for e in await endpoints.by_ids(session, client_id, [second, foreign])] == [
            second
        ]
        assert await endpoints.get(session, other_client_id, first) is None
        updated = await endpoints.update_fields(
            session, client_id, first, now=clock.now(), description="orders", disabled=True
        )
        assert updated is not None and (updated.description, updated.disabled) == ("orders", True)
        assert (
            await endpoints.update_fields(
                session, other_client_id, second, now=clock.now(), url="https://evil"
            )
            is None
        )
        with pytest.raises(ValueError):
            await endpoints.update_fields(
                session, client_id, first, now=clock.now(), secret_sealed="x"
            )
        assert not await endpoints.delete_endpoint(session, other_client_id, first)
        assert await endpoints.delete_endpoint(session, client_id, first)
        await session.commit()
    async with db.read_session() as session:
        assert await endpoints.get(session, client_id, first) is None
        kept = await endpoints.get(session, client_id, second)
    assert kept is not None and kept.url == "https://example.com/hook"


async def test_subscribed_endpoints_are_the_enabled_ones_matching_or_taking_every_type(
    db: Database, client_id: str, other_client_id: str
) -> None:
    orders = await _add(db, client_id, ["order.shipped", "order.paid"])
    every = await _add(db, client_id, [])
    await _add(db, client_id, ["user.created"])
    await _add(db, client_id, ["order.shipped"], disabled=True)
    await _add(db, other_client_id, [])
    async with db.read_session() as session:
        got = await endpoints.subscribed(session, client_id, "order.shipped")
    assert [e.id for e in got] == [orders, every]


async def test_rotation_keeps_the_previous_secret_until_its_grace_ends(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    endpoint_id = await _add(db, client_id, [])
    grace = clock.now() + timedelta(hours=24)
    async with db.session() as session:
        rotated = await endpoints.rotate_secret(
            session,
            client_id,
            endpoint_id,
            new_secret_sealed="sealed-2",
            previous_valid_until=grace,
            now=clock.now(),
        )
        await session.commit()
    assert rotated is not None
    assert (rotated.secret_sealed, rotated.previous_secret_sealed) == ("sealed-2", "sealed-1")
    assert rotated.previous_secret_expires_at == grace


async def test_failures_keep_the_start_of_the_run_and_disable_happens_once(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    endpoint_id = await _add(db, client_id, [])
    start = clock.now()
    async with db.session() as session:
        await endpoints.record_failure(session, client_id, endpoint_id, now=start)
        clock.advance(60)
        after = await endpoints.record_failure(session, client_id, endpoint_id, now=clock.now())
        assert after is not None and (after.failing_since, after.failure_count) == (start, 2)
        await endpoints.record_success(session, client_id, endpoint_id)
        reset = await endpoints.get(session, client_id, endpoint_id)
        assert reset is not None
        await session.refresh(reset)
        assert (reset.failing_since, reset.failure_count) == (None, 0)
        first = await endpoints.disable(
            session, client_id, endpoint_id, reason="failing", now=clock.now()
        )
        second = await endpoints.disable(
            session, client_id, endpoint_id, reason="failing", now=clock.now()
        )
        await session.commit()
    assert (first, second) == (True, False)
