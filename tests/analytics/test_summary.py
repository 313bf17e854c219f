"""GET /analytics/summary matches a seeded data set exactly, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from app.analytics.repository import percentile
from app.core.ids import new_id
from app.messages.models import Message
from app.notifications.models import Delivery, Notification
from app.rooms.models import Room
from app.runtime import Runtime
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
