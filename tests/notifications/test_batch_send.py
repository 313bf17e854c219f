"""The worker's set-based batch path (app/notifications/delivery.py): a channel that sends
batches (`BatchSender`) gets one `send_batch` call per task message instead of one `send`
per delivery, its quota is counted for the whole batch in one storage call, and what the
quota refuses is deferred — given back unspent, never an attempt. On each database, with
the real Redis for the counters, presence and bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.channels.base import (
    ChannelContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    Quota,
    TenantLimits,
)
from app.channels.driver import BaseChannel
from app.compose import build_runtime
from app.core.clock import utcnow
from app.core.ids import new_id
from app.notifications import delivery, repository
from app.notifications.models import Delivery, DeliveryAttempt, Notification
from app.notifications.repository import NewDelivery
from app.runtime import Runtime
from app.tenants.models import Client
from tests.conftest import make_settings

QUOTA = 3


class Batchy(BaseChannel):
    """A plug-in-like channel that sends batches and has a per-client quota."""

    name = "batchy"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.singles = 0

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        self.singles += 1
        return Outcome(OutcomeKind.DELIVERED)

    async def send_batch(
        self,
        targets: Sequence[DeliveryTarget],
        contents: Sequence[dict[str, Any]],
        ctxs: Sequence[ChannelContext],
    ) -> list[Outcome]:
        assert [c["n"] for c in contents] == [1] * len(targets)
        assert [c.attempt for c in ctxs] == [1] * len(targets)
        self.batches.append([t.delivery_id for t in targets])
        return [Outcome(OutcomeKind.DELIVERED, duration_ms=1.0) for _ in targets]

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        return Quota(QUOTA, "minute", (target.client_id,), "qbatchy")


@pytest.fixture
async def rt(db_url: str, redis_server_url: str, redis_prefix: str) -> AsyncIterator[Runtime]:
    settings = make_settings(
        db_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}batch:{new_id()}:"
    )
    runtime = build_runtime(settings, "worker")
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _pending(
    rt: Runtime, channel: str, content: dict[str, Any], n: int
) -> tuple[str, list[str]]:
    """A client and `n` due deliveries of one notification through `channel`."""
    client_id, now = new_id(), utcnow()
    notification = Notification(
        id=new_id(),
        client_id=client_id,
        channels=[channel],
        content={channel: content},
        send_at=now,
        created_at=now,
    )
    new = [NewDelivery(channel, {"user_id": f"u{i}"}, f"u{i}") for i in range(n)]
    async with rt.db.session() as session:
        session.add(Client(id=client_id, name="t", slug=f"t-{client_id.lower()}"))
        await session.flush()
        ids = await repository.create_notification(session, client_id, notification, new, now=now)
        await session.commit()
    assert ids is not None
    return client_id, ids


async def _rows(rt: Runtime, ids: list[str]) -> tuple[dict[str, Delivery], int]:
    async with rt.db.read_session() as session:
        rows = (await session.execute(select(Delivery).where(col(Delivery.id).in_(ids)))).scalars()
        attempts = await session.scalar(
            select(func.count()).where(col(DeliveryAttempt.delivery_id).in_(ids))
        )
    return {r.id: r for r in rows}, int(attempts or 0)


async def test_in_app_deliveries_to_users_settle_on_claim_without_a_send(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = rt.channels["websocket"]
    calls: list[int] = []

    async def counted_batch(targets: Sequence[DeliveryTarget], *args: Any) -> list[Outcome]:
        calls.append(len(targets))
        return [Outcome(OutcomeKind.DELIVERED) for _ in targets]

    async def counted_send(*args: Any) -> Outcome:
        calls.append(1)
        return Outcome(OutcomeKind.DELIVERED)

    monkeypatch.setattr(channel, "send_batch", counted_batch)
    monkeypatch.setattr(channel, "send", counted_send)
    client_id, ids = await _pending(rt, "websocket", {"event": "e", "data": {}}, 40)

    assert await delivery.deliver_batch(rt, client_id, ids) == 40

    assert calls == []  # the inbox items exist: nothing to send
    rows, attempts = await _rows(rt, ids)
    assert {r.status for r in rows.values()} == {"delivered"}
    assert {r.attempts for r in rows.values()} == {1} and attempts == 40


async def test_a_batch_over_its_quota_sends_what_fits_and_defers_the_rest_unspent(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = Batchy()
    monkeypatch.setitem(rt.channels, channel.name, channel)
    counted: list[int] = []
    hit_many = rt.limits.counter.hit_many

    async def one_call(hits: Any, **kwargs: Any) -> Any:
        counted.append(len(hits))
        return await hit_many(hits, **kwargs)

    monkeypatch.setattr(rt.limits.counter, "hit_many", one_call)
    client_id, ids = await _pending(rt, channel.name, {"n": 1}, 5)

    assert await delivery.deliver_batch(rt, client_id, ids) == 5

    # One storage call counted the batch's five; the first three fit the quota.
    assert counted == [5]
    assert channel.singles == 0 and len(channel.batches) == 1
    sent = channel.batches[0]
    assert sent == sorted(ids)[:QUOTA]
    rows, attempts = await _rows(rt, ids)
    assert attempts == QUOTA  # a deferral is no attempt
    for delivery_id, row in rows.items():
        if delivery_id in sent:
            assert (row.status, row.attempts) == ("delivered", 1)
        else:
            # Given back as it was before the claim, due at the quota window's reset.
            assert (row.status, row.attempts) == ("pending", 0), row
            assert row.next_attempt_at is not None and row.next_attempt_at > utcnow()
