"""A large send in the embedded default: the 202 comes once everything is stored, and every
in-app delivery is delivered by then (its inbox item is stored; the users are offline, so
their pushes are owed until they connect).

2,000 recipients here (several of the send's insert batches, on SQLite); the 10,000-recipient
run lives in tests/faults/test_fanout_10k.py, on PostgreSQL with a worker process, where every
e-mail reaches a real SMTP server. Both at 10,000 cost the suite over a minute of its budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlmodel import col

from app.core.clock import utcnow
from app.core.ids import new_id
from app.main import create_app
from app.notifications.models import Delivery
from app.runtime import Runtime
from app.users.models import User
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant

RECIPIENTS = 2_000


@pytest.fixture
async def embedded(own_sqlite_url: str) -> AsyncIterator[Api]:
    """The embedded default with its in-process worker and beat."""
    app = create_app(make_settings(own_sqlite_url, DELIVERY_SWEEP_INTERVAL_SECONDS=1))
    async for http in app_client(app):
        yield Api(http, app=app)


async def _bulk_users(runtime: Runtime, tenant: Tenant, n: int) -> list[str]:
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "client_id": tenant.id,
            "external_id": f"bulk-{i}",
            "display_name": None,
            "email": None,
            "metadata": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    async with runtime.db.session() as session:
        await session.execute(insert(User.__table__), rows)  # type: ignore[attr-defined]
        await session.commit()
    return [r["id"] for r in rows]


async def _unsettled(runtime: Runtime, notification_id: str) -> int:
    """Deliveries not yet final (in-app ones are final when stored)."""
    async with runtime.db.read_session() as session:
        query = select(func.count()).where(
            col(Delivery.notification_id) == notification_id,
            col(Delivery.status).in_(("pending", "sending", "retrying")),
        )
        return int((await session.execute(query)).scalar_one())


async def test_two_thousand_in_app_recipients_are_delivered_when_accepted(embedded: Api) -> None:
    assert embedded.app is not None
    runtime: Runtime = embedded.app.state.runtime
    tenant = await embedded.tenant()
    user_ids = await _bulk_users(runtime, tenant, RECIPIENTS)
    body = {
        "channels": ["websocket"],
        "recipients": [{"user_id": u} for u in user_ids],
        "websocket": {"event": "sale.started", "data": {"percent": 20}},
    }
    started = time.perf_counter()
    r = await embedded.http.post(
        "/api/v1/notifications/send", json=body, headers=tenant.auth, timeout=httpx.Timeout(60)
    )
    accepted = time.perf_counter() - started
    assert r.status_code == 202, r.text[:500]
    sent = r.json()
    assert len(sent["deliveries"]) == RECIPIENTS
    assert sent["status"] == "delivered"
    assert await _unsettled(runtime, sent["id"]) == 0  # delivered when stored: at the 202
    deadline = started + 50
    while (left := await _unsettled(runtime, sent["id"])) > 0:
        assert time.perf_counter() < deadline, f"{left} deliveries not attempted yet"
        await asyncio.sleep(0.2)
    settled = time.perf_counter() - started
    print(
        f"\n{RECIPIENTS} websocket fan-out (SQLite, embedded): 202 after {accepted:.2f} s, "
        f"every delivery final after {settled:.2f} s"
    )
    async with runtime.db.read_session() as session:
        statuses = (
            await session.execute(
                select(col(Delivery.status), func.count())
                .where(col(Delivery.notification_id) == sent["id"])
                .group_by(col(Delivery.status))
            )
        ).all()
    assert dict(statuses) == {"delivered": RECIPIENTS}  # stored in the inbox; pushes owed
