"""Inbound events on the leased-work engine: a retry is the row due later after the shared
jittered schedule, rung by the sweep (no delayed broker message), and the sweep rings in
coalesced batches — counted on the real Redis broker, with no worker consuming.

Each test lives in its own era (a ManualClock decades back) so the sweep, which reads every
client, finds nothing another test of the run's shared database left due.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlmodel import col

from app.core.clock import ManualClock, using_clock, utcnow
from app.core.doorbell import INBOUND_BATCH as BATCH
from app.core.ids import new_id
from app.inbound import repository
from app.inbound.models import InboundEvent
from app.inbound.tasks import process_inbound_event, process_inbound_events, sweep_inbound_events
from app.leasing.retry import JITTER
from app.main import create_app
from app.worker.celery_app import DEFAULT_QUEUE, celery_app
from app.worker.doorbell import PROCESS_EVENTS_TASK
from app.worker.runtime import bind_runtime
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import make_hook
from tests.support.api import Api, Tenant

SCHEDULE = [5, 30]


class Broker:
    """The Redis broker's default queue, read without consuming anything."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key

    async def messages(self) -> list[tuple[str, list[Any]]]:
        """Each queued message's task name and args, oldest first."""
        out = []
        for raw in reversed(await self.redis.lrange(self.key, 0, -1)):
            message = json.loads(raw)
            args = json.loads(base64.b64decode(message["body"]))[0]
            out.append((message["headers"]["task"], args))
        return out

    async def clear(self) -> None:
        """Drop what is queued."""
        await self.redis.delete(self.key)


@contextmanager
def bound(api: Api) -> Iterator[None]:
    """This process's runtime serves the tasks the test calls (as a worker's would)."""
    assert api.app is not None
    bind_runtime(celery_app, api.app.state.runtime)
    try:
        yield
    finally:
        bind_runtime(celery_app, None)


@pytest.fixture
async def redis_api(
    pg_url: str, redis_server_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Api, Broker]]:
    """The API in Redis mode (no worker: what the broker gets stays there) and its queue."""
    prefix = f"{redis_prefix}retry-sweep-{new_id()}:"
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=prefix,
        DELIVERY_RETRY_SCHEDULE=SCHEDULE,
    )
    app = create_app(settings)
    redis = Redis.from_url(redis_server_url)
    try:
        async for http in app_client(app):
            yield Api(http, app=app), Broker(redis, f"{prefix}celery:{DEFAULT_QUEUE}")
            # Rows due in a test's past era would be due in every later one: drop them.
            async with app.state.db.session() as session:
                old = col(InboundEvent.received_at) < datetime(2000, 1, 1, tzinfo=timezone.utc)
                await session.execute(delete(InboundEvent).where(old))
                await session.commit()
    finally:
        await redis.aclose()


async def _store(api: Api, tenant: Tenant, hook_id: str, n: int) -> list[str]:
    """`n` events stored as ingestion stores them, due now, with no doorbell rung."""
    assert api.app is not None
    ids = []
    async with api.app.state.db.session() as session:
        for k in range(n):
            now = utcnow()
            event = InboundEvent(
                id=new_id(),
                client_id=tenant.id,
                hook_id=hook_id,
                body=signing.dumps({"key": f"k{k}", "name": f"Room {k}"}),
                next_attempt_at=now,
                received_at=now,
                updated_at=now,
            )
            assert await repository.insert_event(session, tenant.id, event)
            ids.append(event.id)
        await session.commit()
    return ids


async def _row(api: Api, event_id: str) -> InboundEvent:
    assert api.app is not None
    async with api.app.state.db.read_session() as session:
        query = select(InboundEvent).where(col(InboundEvent.id) == event_id)
        return (await session.execute(query)).scalar_one()


async def test_the_sweep_rings_120_due_events_in_3_coalesced_messages(
    redis_api: tuple[Api, Broker],
) -> None:
    api, broker = redis_api
    with using_clock(ManualClock(datetime(1991, 3, 1, tzinfo=timezone.utc))):
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, action="room")
        ids = await _store(api, tenant, hook["id"], 120)
        await broker.clear()
        with bound(api):
            rung = await asyncio.to_thread(sweep_inbound_events)
        messages = await broker.messages()
    assert rung == 120
    assert [name for name, _ in messages] == [PROCESS_EVENTS_TASK] * 3
    batches = [args[0] for _, args in messages]
    assert [len(b) for b in batches] == [BATCH, BATCH, 120 - 2 * BATCH]
    assert sorted(e for b in batches for _, e in b) == sorted(ids)
    assert {c for b in batches for c, _ in b} == {tenant.id}


async def test_an_inbound_retry_is_due_later_with_jitter_and_rung_by_the_sweep(
    redis_api: tuple[Api, Broker],
) -> None:
    api, broker = redis_api
    assert api.app is not None
    clock = ManualClock(datetime(1992, 3, 1, tzinfo=timezone.utc))
    with using_clock(clock):
        tenant = await api.tenant()
        template = {"room": {"key": "{{ body.key }}", "name": "{{ body.name }}"}}
        hook = await make_hook(api, tenant, action="room", config={"template": template})
        [event_id] = await _store(api, tenant, hook["id"], 1)
        # A transient failure, not the template's fault: the render pool is gone.
        await api.app.state.runtime.renderer.aclose()
        await broker.clear()
        with bound(api):
            status = await asyncio.to_thread(process_inbound_event, tenant.id, event_id)
            row = await _row(api, event_id)
            assert status == "retrying"
            assert (row.status, row.attempts) == ("pending", 1)
            assert row.error and "PoolClosed" in row.error
            assert row.next_attempt_at is not None
            delay = (row.next_attempt_at - clock.now()).total_seconds()
            # ±10% jitter on the first step (5 s).
            assert SCHEDULE[0] * 0.9 <= delay <= SCHEDULE[0] * 1.1
            # No delayed message holds the retry: the broker has nothing.
            assert await broker.messages() == []
            # Not due yet: the sweep rings nothing.
            assert await asyncio.to_thread(sweep_inbound_events) == 0
            assert await broker.messages() == []
            clock.advance(delay)
            assert await asyncio.to_thread(sweep_inbound_events) == 1
            [(name, [pairs])] = await broker.messages()
            assert name == PROCESS_EVENTS_TASK and pairs == [[tenant.id, event_id]]
            # The hook no longer renders (nothing to render with): the rung retry succeeds.
            async with api.app.state.db.session() as session:
                await repository.update_hook(
                    session, tenant.id, hook["id"], now=clock.now(), config={}
                )
                await session.commit()
            assert await asyncio.to_thread(process_inbound_events, pairs) == ["processed"]
        row = await _row(api, event_id)
    assert (row.status, row.attempts) == ("processed", 2)


async def test_an_inbound_event_out_of_attempts_is_the_dead_letter(
    redis_api: tuple[Api, Broker],
) -> None:
    api, _ = redis_api
    assert api.app is not None
    clock = ManualClock(datetime(1993, 3, 1, tzinfo=timezone.utc))
    with using_clock(clock):
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, action="room", config={"template": {"x": "y"}})
        [event_id] = await _store(api, tenant, hook["id"], 1)
        await api.app.state.runtime.renderer.aclose()
        statuses = []
        with bound(api):
            for _ in range(len(SCHEDULE) + 1):
                statuses.append(await asyncio.to_thread(process_inbound_event, tenant.id, event_id))
                # Past the longest step at its longest (±JITTER): the next attempt is due.
                clock.advance(max(SCHEDULE) * (1 + JITTER) + 1)
        row = await _row(api, event_id)
    assert statuses == ["retrying", "retrying", "failed"]
    assert row.status == "failed" and row.error and row.error.startswith("gave up after 3 attempts")
