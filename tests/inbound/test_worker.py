"""Inbound events processed outside the request: the sweep rings for a lost doorbell, and a
real `chatapi worker` process on Redis + PostgreSQL processes what the API stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.clock import utcnow
from app.core.ids import new_id
from app.inbound import processing, repository
from app.inbound.models import InboundEvent
from app.main import create_app
from tests.conftest import app_client, child_env, make_settings
from tests.inbound import signing
from tests.inbound.conftest import events, make_hook, post
from tests.inbound.test_processing import GITHUB_TEMPLATE, messages_of, settled
from tests.support.api import Api
from tests.support.processes import chatapi_process


async def test_an_event_whose_doorbell_was_lost_is_processed_by_the_sweep(db_url: str) -> None:
    app = create_app(make_settings(db_url))
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
