"""Auto-deactivation by room type, per-client overrides, and reactivation by a message."""

from __future__ import annotations

import asyncio

from sqlalchemy import update
from sqlmodel import col

from app.core.clock import ManualClock
from app.core.db import Database
from app.main import create_app
from app.realtime.events import room_target
from app.rooms.sweep import sweep_inactive_rooms
from app.tenants.models import Client
from tests.conftest import app_client, make_settings
from tests.support.api import Api


async def test_sweep_deactivates_after_a_1s_override_and_a_message_reactivates(api: Api) -> None:
    tenant, bystander = await api.tenant(), await api.tenant()
    await api.http.patch(
        "/api/v1/clients/me", json={"room_inactivity_seconds": {"support": 1}}, headers=tenant.auth
    )
    support = await api.room(tenant, type="support")
    group = await api.room(tenant, type="group")
    other_support = await api.room(bystander, type="support")
    events = await api.capture(tenant, room_target(support["id"]))
    await asyncio.sleep(1.2)
    assert api.app is not None
    report = await sweep_inactive_rooms(api.app.state.db, api.app.state.bus, batch_size=100)
    assert report.deactivated >= 1
    got = (await api.http.get(f"/api/v1/rooms/{support['id']}", headers=tenant.auth)).json()
    assert got["is_active"] is False and got["deactivated_at"] is not None
    assert [e.event for e in events] == ["room.deactivated"]
    assert events[0].data["room_id"] == support["id"]
    # Other types and other clients keep their (7/30-day) defaults.
    assert (await api.http.get(f"/api/v1/rooms/{group['id']}", headers=tenant.auth)).json()[
        "is_active"
    ]
    other = await api.http.get(f"/api/v1/rooms/{other_support['id']}", headers=bystander.auth)
    assert other.json()["is_active"] is True

    sent = await api.send(tenant, support["id"], "anyone there?")
    assert sent.status_code == 201
    got = (await api.http.get(f"/api/v1/rooms/{support['id']}", headers=tenant.auth)).json()
    assert got["is_active"] is True and got["deactivated_at"] is None
    assert [e.event for e in events] == ["room.deactivated", "room.reactivated", "message.created"]
    inactive = (await api.http.get("/api/v1/rooms?is_active=false", headers=tenant.auth)).json()
    assert inactive["data"] == []


async def test_sweep_works_in_bounded_batches(api: Api) -> None:
    tenant = await api.tenant()
    await api.http.patch(
        "/api/v1/clients/me", json={"room_inactivity_seconds": {"channel": 1}}, headers=tenant.auth
    )
    rooms = [await api.room(tenant, type="channel") for _ in range(5)]
    await asyncio.sleep(1.2)
    assert api.app is not None
    report = await sweep_inactive_rooms(api.app.state.db, api.app.state.bus, batch_size=2)
    assert report.deactivated >= 5
    assert report.batches >= 3
    listed = (
        await api.http.get("/api/v1/rooms/all?is_active=false&type=channel", headers=tenant.auth)
    ).json()["data"]
    assert {r["id"] for r in rooms} <= {r["id"] for r in listed}


async def test_beat_runs_the_sweep_in_the_embedded_worker(db_url: str) -> None:
    settings = make_settings(
        db_url, ROOM_SWEEP_INTERVAL_SECONDS=0.3, HEARTBEAT_INTERVAL_SECONDS=3600
    )
    app = create_app(settings)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        await api.http.patch(
            "/api/v1/clients/me",
            json={"room_inactivity_seconds": {"group": 1}},
            headers=tenant.auth,
        )
        room = await api.room(tenant, type="group")
        events = await api.capture(tenant, room_target(room["id"]))
        db: Database = app.state.db
        assert db is not None
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            got = (await api.http.get(f"/api/v1/rooms/{room['id']}", headers=tenant.auth)).json()
            if not got["is_active"]:
                break
            assert asyncio.get_running_loop().time() < deadline, "beat never swept the room"
            await asyncio.sleep(0.1)
        # The worker thread publishes into the API's in-process bus.
        while not events:
            assert asyncio.get_running_loop().time() < deadline, "no room.deactivated event"
            await asyncio.sleep(0.05)
        assert events[0].event == "room.deactivated"


async def test_one_tenants_absurd_setting_does_not_stop_the_sweep_for_others(
    api: Api, clock: ManualClock
) -> None:
    broken, healthy = await api.tenant(), await api.tenant()
    assert api.app is not None
    db: Database = api.app.state.db
    # Written straight into the database, as an old release or a manual edit could have.
    async with db.session() as session:
        await session.execute(
            update(Client)
            .where(col(Client.id) == broken.id)
            .values(settings={"room_inactivity_seconds": {"support": 10**15, "group": "x"}})
        )
        await session.commit()
    await api.http.patch(
        "/api/v1/clients/me",
        json={"room_inactivity_seconds": {"support": 60}},
        headers=healthy.auth,
    )
    due = await api.room(healthy, type="support")
    broken_room = await api.room(broken, type="support")
    events = await api.capture(healthy, room_target(due["id"]))
    clock.advance(120)

    report = await sweep_inactive_rooms(db, api.app.state.bus, batch_size=100)

    assert report.deactivated >= 1
    got = (await api.http.get(f"/api/v1/rooms/{due['id']}", headers=healthy.auth)).json()
    assert got["is_active"] is False
    assert [e.event for e in events] == ["room.deactivated"]
    # The broken tenant still works, on the defaults, and its room is not swept early.
    me = await api.http.get("/api/v1/clients/me", headers=broken.auth)
    assert me.status_code == 200, me.text
    assert me.json()["settings"]["room_inactivity_seconds"]["support"] == 7 * 86_400
    still = await api.http.get(f"/api/v1/rooms/{broken_room['id']}", headers=broken.auth)
    assert still.json()["is_active"] is True
