"""The doorbell is a runtime part: services ring through `Runtime.doorbell`, which publishes
through Celery in coalesced, bounded messages, and `Runtime.stop` drains it before the
pools close. The clock and the metrics registry are runtime parts too."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry, Counter

from app.compose import build_runtime
from app.core.clock import ManualClock, installed_clock, utcnow
from app.core.doorbell import Doorbell, InboundPair
from app.main import create_app
from app.runtime import Runtime
from app.worker.celery_app import DELIVERY_QUEUE, celery_app, configure_celery
from app.worker.doorbell import INBOUND_BATCH, RING_CHUNK, CeleryDoorbell, Message
from tests.channels.receiver import Receiver, running_receiver
from tests.conftest import app_client, make_settings
from tests.notifications.relay import RELAY_SETTINGS, add_endpoint, send, wait_for_status
from tests.support.api import Api


class Recording:
    """A Doorbell that notes what it is asked, then rings the real one (a real broker)."""

    def __init__(self, real: Doorbell) -> None:
        self.real = real
        self.calls: list[tuple[str, object]] = []

    async def ring_deliveries(
        self, client_id: str, delivery_ids: Sequence[str], *, batch: int | None = None
    ) -> None:
        self.calls.append(("deliveries", list(delivery_ids)))
        await self.real.ring_deliveries(client_id, delivery_ids, batch=batch)

    async def ring_inbound(self, pairs: Sequence[InboundPair]) -> None:
        self.calls.append(("inbound", list(pairs)))
        await self.real.ring_inbound(pairs)

    async def drain(self) -> None:
        self.calls.append(("drain", None))
        await self.real.drain()


class HeldSend:
    """A publish that blocks (in its broker thread) until released, recording each batch of
    messages before handing it to the real broker."""

    def __init__(self, bell: CeleryDoorbell) -> None:
        self.real = bell.send
        self.batches: list[list[Message]] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, messages: Sequence[Message]) -> None:
        self.entered.set()
        assert self.release.wait(30), "the test never released the publish"
        self.batches.append(list(messages))
        self.real(messages)


def _queued(queue: str) -> int:
    """Messages waiting in the process's in-memory broker queue."""
    with celery_app.connection_for_write() as connection:
        return int(connection.default_channel._size(queue))


@pytest.fixture
async def runtime(sqlite_url: str) -> AsyncIterator[Runtime]:
    """An API-role runtime on the in-memory broker (no worker consumes it), started."""
    settings = make_settings(sqlite_url)
    configure_celery(settings)
    rt = build_runtime(settings, role="api")
    await rt.start()
    try:
        yield rt
    finally:
        if rt.loop is not None:
            await rt.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def test_a_send_rings_through_the_runtimes_doorbell_and_the_embedded_worker_delivers(
    own_sqlite_url: str, receiver: Receiver
) -> None:
    # No sweep within the test: only the ring can bring the delivery to the worker.
    settings = make_settings(
        own_sqlite_url, **(RELAY_SETTINGS | {"DELIVERY_SWEEP_INTERVAL_SECONDS": 3600})
    )
    app = create_app(settings)  # the embedded Celery worker on the in-memory broker
    async for http in app_client(app):
        rt: Runtime = app.state.runtime
        assert isinstance(rt.doorbell, CeleryDoorbell)
        recording = Recording(rt.doorbell)
        rt.doorbell = recording
        api = Api(http, app=app)
        tenant = await api.tenant()
        await add_endpoint(app, tenant, receiver.url("/hook"))
        sent = await send(
            api,
            tenant,
            {"channels": ["webhook"], "webhook": {"event_type": "order.shipped", "payload": {}}},
        )
        await wait_for_status(api, tenant, sent["id"], {"delivered"})
        ids = [d["id"] for d in sent["deliveries"]]
        assert ("deliveries", ids) in recording.calls
        assert receiver.paths() == ["/hook"]


async def test_rings_during_a_publish_go_out_together_in_bounded_messages(
    runtime: Runtime,
) -> None:
    bell = runtime.doorbell
    assert isinstance(bell, CeleryDoorbell)
    held = HeldSend(bell)
    bell.send = held  # type: ignore[method-assign]
    before = _queued(DELIVERY_QUEUE)
    await bell.ring_deliveries("c", ["d0"])
    await asyncio.to_thread(held.entered.wait, 30)  # the first publish is in flight
    later = [f"d{n}" for n in range(1, RING_CHUNK + 11)]
    for delivery_id in later:
        await bell.ring_deliveries("c", [delivery_id])
    drained = asyncio.create_task(bell.drain())
    await asyncio.sleep(0)
    assert not drained.done()  # drain waits for the held publish
    held.release.set()
    await asyncio.wait_for(drained, 30)
    assert [[args[1] for _, args, _ in batch] for batch in held.batches] == [
        [["d0"]],
        [later[:RING_CHUNK], later[RING_CHUNK:]],
    ]
    assert _queued(DELIVERY_QUEUE) == before + 3  # published for real


async def test_inbound_rings_are_batched_and_a_failed_publish_does_not_stop_the_next(
    runtime: Runtime,
) -> None:
    bell = runtime.doorbell
    assert isinstance(bell, CeleryDoorbell)
    sent: list[list[Message]] = []

    def flaky(messages: Sequence[Message]) -> None:
        if not sent:
            sent.append([])
            raise ConnectionError("broker down")
        sent.append(list(messages))

    bell.send = flaky  # type: ignore[method-assign]
    await bell.ring_inbound([("c", "lost")])
    await bell.drain()
    pairs = [("c", f"e{n}") for n in range(INBOUND_BATCH + 1)]
    await bell.ring_inbound(pairs)
    await bell.drain()
    assert [[args[0] for _, args, _ in batch] for batch in sent] == [
        [],
        [[list(p) for p in pairs[:INBOUND_BATCH]]],
        [[list(p) for p in pairs[INBOUND_BATCH:]]],
    ]


async def test_stop_drains_rings_made_by_stop_hooks_before_closing_the_pools(
    runtime: Runtime,
) -> None:
    recording = Recording(runtime.doorbell)
    runtime.doorbell = recording
    before = _queued(DELIVERY_QUEUE)

    async def hand_over() -> None:  # as the delivery engine's waiters do at stop
        await runtime.doorbell.ring_deliveries("c", [f"d{n}" for n in range(RING_CHUNK + 1)])

    runtime.on_stop(hand_over)
    await runtime.stop()
    assert [kind for kind, _ in recording.calls] == ["deliveries", "drain"]
    assert _queued(DELIVERY_QUEUE) == before + 2  # in the broker once stop returns


async def test_the_runtime_installs_its_clock_while_it_runs(sqlite_url: str) -> None:
    manual = ManualClock(datetime(2030, 1, 2, tzinfo=timezone.utc))
    previous = installed_clock()
    rt = build_runtime(make_settings(sqlite_url), role="api", clock=manual)
    assert rt.clock is manual and installed_clock() is previous
    await rt.start()
    try:
        manual.advance(60)
        assert utcnow() == datetime(2030, 1, 2, 0, 1, tzinfo=timezone.utc)
    finally:
        await rt.stop()
    assert installed_clock() is previous


async def test_metrics_serves_the_runtimes_registry(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url), run_embedded_worker=False)
    async for http in app_client(app):
        registry = CollectorRegistry()
        Counter("chatapi_test_runtime_part", "Only in this runtime's registry.", registry=registry)
        app.state.runtime.metrics = registry
        body = (await http.get("/metrics")).text
        assert "chatapi_test_runtime_part_total 0.0" in body
        assert "chatapi_http_requests_total" not in body
