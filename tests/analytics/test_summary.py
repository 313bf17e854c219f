"""GET /analytics/summary matches a seeded data set exactly, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlmodel import col

from app.analytics.models import DeliveryRollup, LatencyRollup, RollupState
from app.analytics.repository import percentile
from app.analytics.rollup import RELATIVE_ERROR, roll_up
from app.core.ids import new_id
from app.messages.models import Message
from app.notifications.models import Delivery, Notification
from app.rooms.models import Room
from app.runtime import Runtime
from app.worker.celery_app import TASK_MODULES
from app.worker.schedule import beat_schedule
from tests.conftest import make_settings
from tests.support.api import Api, Tenant

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


async def _seed(api: Api, tenant: Tenant) -> dict[str, object]:
    runtime: Runtime = api.app.state.runtime  # type: ignore[union-attr]
    latencies = [1.0, 2.0, 3.0, 4.0, 10.0]
    async with runtime.db.session() as session:
        rooms = [
            Room(id=new_id(), client_id=tenant.id, type=t, is_active=a)
            for t, a in [("group", True), ("group", True), ("group", False), ("support", False)]
        ]
        session.add_all(rooms)
        await session.flush()
        for i in range(7):  # 5 inside the period, 2 outside
            at = T0 + timedelta(hours=i) if i < 5 else T0 - timedelta(hours=i)
            session.add(
                Message(
                    id=new_id(),
                    client_id=tenant.id,
                    room_id=rooms[0].id,
                    seq=i + 1,
                    content="x",
                    created_at=at,
                )
            )
        statuses = ["delivered", "delivered", "failed", "partial"]
        notes = [
            Notification(id=new_id(), client_id=tenant.id, status=s, created_at=T0)
            for s in statuses
        ]
        outside = Notification(
            id=new_id(), client_id=tenant.id, status="delivered", created_at=T0 - timedelta(days=3)
        )
        session.add_all([*notes, outside])
        await session.flush()
        rows = []
        for seconds in latencies:
            rows.append(
                Delivery(
                    id=new_id(),
                    client_id=tenant.id,
                    notification_id=notes[0].id,
                    channel="webhook",
                    status="delivered",
                    created_at=T0,
                    delivered_at=T0 + timedelta(seconds=seconds),
                )
            )
        rows += [
            Delivery(
                id=new_id(),
                client_id=tenant.id,
                notification_id=notes[2].id,
                channel="email",
                status="failed",
                created_at=T0,
            ),
            Delivery(
                id=new_id(),
                client_id=tenant.id,
                notification_id=notes[2].id,
                channel="email",
                status="failed",
                created_at=T0,
            ),
            Delivery(
                id=new_id(),
                client_id=tenant.id,
                notification_id=notes[3].id,
                channel="websocket",
                status="pending",
                created_at=T0,
            ),
            # Outside the period: not counted.
            Delivery(
                id=new_id(),
                client_id=tenant.id,
                notification_id=outside.id,
                channel="email",
                status="delivered",
                created_at=T0 - timedelta(days=3),
                delivered_at=T0 - timedelta(days=3) + timedelta(seconds=99),
            ),
        ]
        session.add_all(rows)
        await session.commit()
    return {"latencies": sorted(latencies)}


async def test_the_summary_matches_a_seeded_data_set_exactly(api: Api) -> None:
    tenant = await api.tenant()
    other = await api.tenant()
    seeded = await _seed(api, tenant)
    await _seed(api, other)  # another client's rows never count
    r = await api.http.get(
        "/api/v1/analytics/summary",
        params={"since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    latencies = seeded["latencies"]
    assert isinstance(latencies, list)
    assert body["messages_sent"] == 5
    assert body["rooms"] == {
        "support": {"active": 0, "inactive": 1},
        "group": {"active": 2, "inactive": 1},
        "direct": {"active": 0, "inactive": 0},
        "channel": {"active": 0, "inactive": 0},
    }
    assert body["notifications"] == {
        "total": 4,
        "by_status": {"delivered": 2, "failed": 1, "partial": 1},
    }
    assert body["deliveries"]["by_channel"] == {
        "webhook": {"delivered": 5},
        "email": {"failed": 2},
        "websocket": {"pending": 1},
    }
    assert body["deliveries"]["total"] == 8
    assert body["deliveries"]["failed"] == 2
    assert body["deliveries"]["latency_seconds"] == {
        "count": 5,
        "p50": percentile(latencies, 0.5),  # 3.0
        "p95": round(percentile(latencies, 0.95) or 0, 3),  # 8.8
    }
    assert body["deliveries"]["latency_seconds"]["p95"] == 8.8
    assert body["live_connections"] == 0


async def test_the_summary_needs_the_master_key_and_a_sane_period(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    r = await api.http.get("/api/v1/analytics/summary", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    backwards = await api.http.get(
        "/api/v1/analytics/summary",
        params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
        headers=tenant.auth,
    )
    assert backwards.status_code == 422
    assert backwards.headers["content-type"] == "application/problem+json"
    empty = await api.http.get("/api/v1/analytics/summary", headers=tenant.auth)
    assert empty.status_code == 200
    assert empty.json()["deliveries"]["latency_seconds"] == {"count": 0, "p50": None, "p95": None}


@pytest.fixture
async def fresh_rollups(api: Api) -> AsyncIterator[Runtime]:
    """The rollup job as never run, before and after the test (the database is shared, and
    its clock-free state would otherwise cover other tests' rows)."""
    runtime: Runtime = api.app.state.runtime  # type: ignore[union-attr]

    async def reset() -> None:
        async with runtime.db.session() as session:
            for model in (RollupState, DeliveryRollup, LatencyRollup):
                await session.execute(delete(model))
            await session.commit()

    await reset()
    yield runtime
    await reset()


async def _summary(api: Api, tenant: Tenant, since: datetime, until: datetime) -> dict[str, Any]:
    r = await api.http.get(
        "/api/v1/analytics/summary",
        params={"since": since.isoformat(), "until": until.isoformat()},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_after_the_rollup_counts_stay_exact_and_percentiles_within_the_bucket_precision(
    api: Api, fresh_rollups: Runtime
) -> None:
    tenant = await api.tenant()
    other = await api.tenant()
    seeded = await _seed(api, tenant)
    await _seed(api, other)
    runtime = fresh_rollups
    period = (T0 - timedelta(days=4), T0 + timedelta(days=1))
    exact = await _summary(api, tenant, *period)
    assert exact["approximate"] == []
    await roll_up(runtime.db, now=T0 + timedelta(days=2))
    rolled = await _summary(api, tenant, *period)
    assert rolled["deliveries"]["by_channel"] == exact["deliveries"]["by_channel"]
    assert rolled["deliveries"]["total"] == exact["deliveries"]["total"] == 9
    assert rolled["deliveries"]["failed"] == 2
    assert rolled["approximate"] == [
        "deliveries.latency_seconds.p50",
        "deliveries.latency_seconds.p95",
    ]
    latencies = sorted([*seeded["latencies"], 99.0])  # type: ignore[list-item]
    assert rolled["deliveries"]["latency_seconds"]["count"] == 6
    for name, fraction in (("p50", 0.5), ("p95", 0.95)):
        truth = percentile(latencies, fraction) or 0
        assert exact["deliveries"]["latency_seconds"][name] == round(truth, 3)
        got = rolled["deliveries"]["latency_seconds"][name]
        assert abs(got - truth) <= RELATIVE_ERROR * truth + 0.001, (name, got, truth)


async def test_the_rollup_picks_up_status_changes_and_the_current_hour_is_counted_live(
    api: Api, fresh_rollups: Runtime
) -> None:
    tenant = await api.tenant()
    await _seed(api, tenant)
    runtime = fresh_rollups
    await roll_up(runtime.db, now=T0 + timedelta(hours=2))
    period = (T0, T0 + timedelta(days=1))
    async with runtime.db.session() as session:
        pending = (
            await session.execute(
                select(Delivery).where(
                    col(Delivery.client_id) == tenant.id, col(Delivery.status) == "pending"
                )
            )
        ).scalar_one()
        pending.status = "delivered"
        pending.delivered_at = T0 + timedelta(seconds=5)
        pending.updated_at = T0 + timedelta(hours=2, minutes=1)
        note_id = pending.notification_id
        # Created after the rolled hours: counted from the rows.
        session.add(
            Delivery(
                id=new_id(),
                client_id=tenant.id,
                notification_id=note_id,
                channel="email",
                status="pending",
                created_at=T0 + timedelta(hours=2, minutes=30),
            )
        )
        await session.commit()
    body = await _summary(api, tenant, *period)
    assert body["deliveries"]["by_channel"]["email"] == {"failed": 2, "pending": 1}
    await roll_up(runtime.db, now=T0 + timedelta(hours=3))
    body = await _summary(api, tenant, *period)
    assert body["deliveries"]["by_channel"] == {
        "webhook": {"delivered": 5},
        "email": {"failed": 2, "pending": 1},
        "websocket": {"delivered": 1},
    }
    assert body["deliveries"]["latency_seconds"]["count"] == 6


def test_the_rollup_job_is_on_the_beat_schedule(sqlite_url: str) -> None:
    schedule = beat_schedule(make_settings(sqlite_url))
    assert any(entry["task"] == "analytics.roll_up" for entry in schedule.values())
    assert "app.analytics.tasks" in TASK_MODULES  # every process registers it
