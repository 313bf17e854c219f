"""Inbound events processed outside the request: the sweep rings for a lost doorbell, and a
real `chatapi worker` process on Redis + PostgreSQL processes what the API stored."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import pytest

from app.core.clock import utcnow
from app.core.ids import new_id
from app.inbound import processing, repository
from app.inbound.models import InboundEvent
from app.main import create_app
from tests.conftest import app_client, asyncpg_dsn, child_env, make_settings
from tests.inbound import signing
from tests.inbound.conftest import events, make_hook, post
from tests.inbound.test_processing import GITHUB_TEMPLATE, github_event, messages_of, settled
from tests.support.api import Api, Tenant
from tests.support.processes import chatapi_process


async def test_an_event_whose_doorbell_was_lost_is_processed_by_the_sweep(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(db_url))
    # create_app's configure_logging replaced the root's handlers, caplog's among them.
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="chatapi.inbound")
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, action="room")
        # Stored as ingestion stores it, but no task message is ever sent.
        now = utcnow()
        event = InboundEvent(
            id=new_id(),
            client_id=tenant.id,
            hook_id=hook["id"],
            body=signing.dumps({"key": "lost", "name": "Found by the sweep"}),
            next_attempt_at=now,
            received_at=now,
            updated_at=now,
        )
        async with app.state.db.session() as session:
            assert await repository.insert_event(session, tenant.id, event)
            await session.commit()
        processed = await settled(api, tenant, hook["id"], event.id, timeout=30)
        assert processed["status"] == "processed"
        assert processed["outcome"]["room_created"] is True
        # The sweep that found it says so in one line; sweeps that find nothing say nothing.
        sweeps = [r for r in caplog.records if r.getMessage() == "inbound sweep"]
        assert sweeps and all(r.__dict__["events"] > 0 for r in sweeps)


@pytest.mark.slow
async def test_a_chatapi_worker_process_on_redis_processes_the_github_issue(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}inbound:"
    )
    app = create_app(settings)
    with chatapi_process(["worker", "--concurrency", "2"], child_env(settings), tmp_path, "worker"):
        async for http in app_client(app):
            api = Api(http, app=app)
            tenant = await api.tenant()
            hook = await make_hook(
                api,
                tenant,
                name="github",
                scheme="github",
                action="message",
                config={"template": GITHUB_TEMPLATE},
            )
            body = signing.dumps(signing.github_issue(31337, "Worker process"))
            r = await post(api, hook["url"], body, signing.github(hook["secret"], body))
            assert r.status_code == 202, r.text
            event = await settled(api, tenant, hook["id"], r.json()["id"], timeout=60)
            assert event["status"] == "processed", event
            [message] = await messages_of(api, tenant, event["outcome"]["room_id"])
            assert message["content"] == "New issue: Worker process"


async def test_concurrent_events_for_one_key_share_one_room_on_postgresql(pg_url: str) -> None:
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(
            api, tenant, scheme="github", action="message", config={"template": GITHUB_TEMPLATE}
        )
        ids = []
        for n in range(6):
            body = signing.dumps(signing.github_issue(4242, f"Race {n}"))
            r = await post(api, hook["url"], body, signing.github(hook["secret"], body))
            ids.append(r.json()["id"])
        # Processed at once, as by six workers.
        results = await asyncio.gather(
            *(processing.process(app.state.runtime, tenant.id, i) for i in ids)
        )
        assert [r.status for r in results] == ["processed"] * 6
        outcomes = [e["outcome"] for e in await events(api, tenant, hook["id"])]
        assert len({o["room_id"] for o in outcomes}) == 1
        assert sorted(o["room_created"] for o in outcomes) == [False] * 5 + [True]
        rooms = (await http.get("/api/v1/rooms/all", headers=tenant.auth)).json()["data"]
        assert len(rooms) == 1
        assert len(await messages_of(api, tenant, rooms[0]["id"])) == 6


async def test_another_tenants_hook_and_events_are_404(api: Api) -> None:
    owner, intruder = await api.tenant(), await api.tenant()
    hook = await make_hook(api, owner, scheme="github")
    body = signing.dumps({})
    event = (await post(api, hook["url"], body, signing.github(hook["secret"], body))).json()
    base = f"/api/v1/inbound-webhooks/{hook['id']}"
    for method, path in [
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("POST", f"{base}/rotate-secret"),
        ("GET", f"{base}/events"),
        ("POST", f"{base}/events/{event['id']}/replay"),
    ]:
        r = await api.http.request(method, path, headers=intruder.auth, json={})
        assert r.status_code == 404, f"{method} {path}: {r.status_code}"
    listed = await api.http.get("/api/v1/inbound-webhooks", headers=intruder.auth)
    assert listed.json()["data"] == []
    assert len(await events(api, owner, hook["id"])) == 1


async def test_hook_secrets_are_stored_sealed(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant)
    assert api.app is not None
    async with api.app.state.db.read_session() as session:
        stored = await repository.get_hook(session, tenant.id, hook["id"])
    assert stored is not None
    assert hook["secret"] not in stored.secret_sealed
    assert stored.secret_sealed.startswith("v1:")


async def _held_in_action(
    api: Api, tenant: Tenant, hook_id: str, event_id: str, watcher: asyncpg.Connection
) -> bool:
    """The event is claimed and a backend of the database waits on a row lock."""
    [row] = [e for e in await events(api, tenant, hook_id) if e["id"] == event_id]
    waiting = await watcher.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock'"
    )
    return bool(row["status"] == "processing" and waiting >= 1)


@pytest.mark.slow
async def test_an_event_whose_worker_was_killed_mid_action_is_processed_once_by_the_next(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """Deterministic kill point: the test holds the room's row lock, which the `message`
    action needs to number its message, so the worker stops *after* claiming the event
    and *inside* the action's transaction (its backend shows as waiting on a lock). It is
    SIGKILLed there; its uncommitted message dies with its connection. A new worker (and
    beat, whose sweep re-rings expired leases) must then process the event exactly once."""
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}inbound-kill:",
        TASK_TIMEOUT_SECONDS=10,
        INBOUND_LEASE_SECONDS=12,
    )
    env = child_env(settings)
    app = create_app(settings)  # REDIS_URL set: no embedded worker in this process
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        room = await http.post("/api/v1/rooms", json={"name": "Alerts"}, headers=tenant.auth)
        assert room.status_code == 201, room.text
        room_id = room.json()["id"]
        hook = await make_hook(
            api, tenant, scheme="github", action="message", config={"room_id": room_id}
        )
        # Two connections: one holds the lock in its transaction; the other watches
        # pg_stat_activity outside any (a transaction sees one frozen statistics snapshot).
        locker = await asyncpg.connect(asyncpg_dsn(pg_url))
        watcher = await asyncpg.connect(asyncpg_dsn(pg_url))
        try:
            lock = locker.transaction()
            await lock.start()
            await locker.execute("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", room_id)
            with chatapi_process(["worker", "--concurrency", "1"], env, tmp_path, "w1") as first:
                event_id = await github_event(api, hook, {"content": "Disk full on db-1"})

                # Held from the claim on; the kill must come before TASK_TIMEOUT_SECONDS (10 s),
                # when the worker would cancel the attempt itself (seen within ~1 s in practice).
                deadline = asyncio.get_running_loop().time() + 60
                while not await _held_in_action(api, tenant, hook["id"], event_id, watcher):
                    assert first.proc.poll() is None, first.output()[-3000:]
                    assert asyncio.get_running_loop().time() < deadline, first.output()[-3000:]
                    await asyncio.sleep(0.05)
                first.proc.kill()  # SIGKILL: no shutdown, no ack, no cleanup
                first.proc.wait()
            # The claim's lease is INBOUND_LEASE_SECONDS long: what the next worker waits out.
            lease = await watcher.fetchval(
                "SELECT EXTRACT(EPOCH FROM lease_until - updated_at) FROM inbound_events"
                " WHERE id = $1",
                event_id,
            )
            assert float(lease) == settings.INBOUND_LEASE_SECONDS
            await lock.rollback()
        finally:
            await locker.close()
            await watcher.close()
        [killed] = [e for e in await events(api, tenant, hook["id"]) if e["id"] == event_id]
        assert (killed["status"], killed["attempts"]) == ("processing", 1)
        assert await messages_of(api, tenant, room_id) == []

        with (
            chatapi_process(["worker", "--concurrency", "1"], env, tmp_path, "w2") as second,
            chatapi_process(["beat"], env, tmp_path, "beat"),
        ):
            event = await settled(api, tenant, hook["id"], event_id, timeout=90)
            assert event["status"] == "processed", (event, second.output()[-3000:])
        assert event["attempts"] == 2
        [message] = await messages_of(api, tenant, room_id)
        assert message["content"] == "Disk full on db-1"
        assert event["outcome"]["message_id"] == message["id"]
