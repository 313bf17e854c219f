"""Settle on claim (app/notifications/settle.py), on both databases: due in-app deliveries
to a user are delivered by their claim in one transaction — attempt counted and recorded,
the notification's status refreshed — and nothing else is touched: other channels, rows
without a user, rows not due or out of attempts, another tenant's rows."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.core.clock import utcnow
from app.core.ids import new_id
from app.notifications import repository
from app.notifications.models import Delivery, DeliveryAttempt, Notification
from app.notifications.repository import NewDelivery
from app.notifications.settle import settle_batch, settling_channels
from app.runtime import Runtime
from tests.support.api import Api


async def _due(runtime: Runtime, client_id: str, new: list[NewDelivery]) -> tuple[str, list[str]]:
    """A notification whose deliveries are pending and due now (a scheduled send fallen
    due); its id and its delivery ids."""
    now = utcnow()
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=sorted({d.channel for d in new}),
        content={"websocket": {"event": "e", "data": {}}, "webhook": {"event_type": "t"}},
        send_at=now,
        created_at=now,
    )
    async with runtime.db.session() as session:
        ids = await repository.create_notification(session, client_id, notification, new, now=now)
        await session.commit()
    assert ids is not None
    return notification.id, ids


async def _rows(runtime: Runtime, ids: list[str]) -> dict[str, Delivery]:
    async with runtime.db.read_session() as session:
        rows = (await session.execute(select(Delivery).where(Delivery.id.in_(ids)))).scalars()  # type: ignore[attr-defined]
        return {d.id: d for d in rows}


async def test_due_in_app_deliveries_to_users_are_delivered_by_their_claim(api: Api) -> None:
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    assert settling_channels(runtime) == ["websocket"]
    tenant, other = await api.tenant(), await api.tenant()
    only_in_app, (a, b) = await _due(
        runtime,
        tenant.id,
        [NewDelivery("websocket", {"user_id": u}, u) for u in ("ua", "ub")],
    )
    mixed, (c, no_user, hook) = await _due(
        runtime,
        tenant.id,
        [
            NewDelivery("websocket", {"user_id": "uc"}, "uc"),
            NewDelivery("websocket", {}, None),
            NewDelivery("webhook", {}, None, endpoint_id=new_id()),
        ],
    )
    _, (foreign,) = await _due(runtime, other.id, [NewDelivery("websocket", {"user_id": "u"}, "u")])
    _, (later,) = await _due(runtime, tenant.id, [NewDelivery("websocket", {"user_id": "u"}, "u")])
    async with runtime.db.session() as session:
        row = await session.get(Delivery, later)
        assert row is not None
        row.next_attempt_at = utcnow() + timedelta(hours=1)
        await session.commit()

    asked = [a, b, c, no_user, hook, foreign, later]
    settled = await settle_batch(runtime, tenant.id, asked, ["websocket"])

    assert [s.id for s in settled] == sorted([a, b, c])
    assert {s.user_id for s in settled} == {"ua", "ub", "uc"}
    rows = await _rows(runtime, asked)
    for i in (a, b, c):
        assert rows[i].status == "delivered" and rows[i].attempts == 1
        assert rows[i].delivered_at is not None and rows[i].lease_until is None
    for i in (no_user, hook, foreign, later):
        assert rows[i].status == "pending" and rows[i].attempts == 0
    async with runtime.db.read_session() as session:
        attempts = (await session.execute(select(DeliveryAttempt))).scalars().all()
        statuses = {
            n.id: n.status
            for n in (await session.execute(select(Notification))).scalars()
            if n.id in (only_in_app, mixed)
        }
    mine = [t for t in attempts if t.client_id == tenant.id]
    assert sorted(t.delivery_id for t in mine) == sorted([a, b, c])
    assert {t.outcome for t in mine} == {"delivered"}
    assert statuses[only_in_app] == "delivered"
    assert statuses[mixed] == "pending"  # its webhook and no-user rows are still owed

    # A second ring for the same ids (a duplicate message) settles nothing more; a ring
    # for another channel's deliveries finds nothing to settle.
    assert await settle_batch(runtime, tenant.id, asked, ["websocket"]) == []
    assert await settle_batch(runtime, tenant.id, [hook], ["websocket"]) == []


async def test_a_delivery_out_of_attempts_is_left_to_the_general_path(api: Api) -> None:
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    tenant = await api.tenant()
    _, (spent,) = await _due(runtime, tenant.id, [NewDelivery("websocket", {"user_id": "u"}, "u")])
    async with runtime.db.session() as session:
        row = await session.get(Delivery, spent)
        assert row is not None
        row.attempts = runtime.settings.delivery_attempt_limit
        await session.commit()

    assert await settle_batch(runtime, tenant.id, [spent], ["websocket"]) == []
    assert (await _rows(runtime, [spent]))[spent].status == "pending"
