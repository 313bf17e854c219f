"""Delivering (the worker side of the relay, DESIGN.md §4): claim, send, record, finish.

A task message carries up to a hundred delivery ids of one client. They are claimed in one
statement (their notifications and targets read in the same transaction) and sent: a
channel that sends batches (`BatchSender`, uncapped) in one call after one quota count for
the batch, the others concurrently (bounded). Each result is written as soon as it is known:
a writer (`delivery_results.ResultWriter`) collects whatever results have arrived and
writes them in one transaction (the attempt row, the fenced status change, the endpoint's
bookkeeping), so a slow endpoint holds up only its own deliveries while a burst of fast
ones costs few transactions. Notification statuses are refreshed once per write for the
notifications that reached a final state, under the notification's row lock (sorted,
before any delivery row is touched, the same order cancel and retry use).

Our own limits defer, never fail (DESIGN.md §4). A claim counts an attempt; when one of our
limits stops it before its request — the channel's in-flight cap, a quota, this worker
shutting down — the outcome is DEFER and the claim is given back unspent: no attempt row, no
mark on the endpoint's health. A cap's refusals wait in this process (`waiting`) and go out
as soon as the cap frees a slot. A claim lost with its worker (kill -9) cannot tell whether
its request left, so it keeps its attempt (at least once; receivers dedupe by webhook-id):
only `delivery_attempt_limit` such losses in a row fail a delivery (a poison delivery).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from app.channels.base import (
    BatchSender,
    Channel,
    ChannelContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
)
from app.channels.capacity import Capped
from app.channels.waiting import CapacityWaiters, Waiting
from app.core.clock import utcnow
from app.notifications import deferral_repository as deferrals
from app.notifications import delivery_repository as deliveries
from app.notifications.delivery_load import Loaded, load, target_of
from app.notifications.delivery_results import AttemptResult, ResultWriter
from app.notifications.in_app_batch import push_delivered
from app.notifications.models import Delivery, Notification
from app.notifications.push import InAppPush
from app.notifications.quota import over_quota, over_quota_many
from app.notifications.settle import settle_batch, settling_channels
from app.observability.delivery_metrics import observe_many
from app.runtime import Runtime

log = logging.getLogger("chatapi.notifications")

# Deliveries of one task message in flight at once (each mostly waits on the network).
DELIVERY_CONCURRENCY = 50
# Share of the lease one attempt may take; the rest is for recording the result.
ATTEMPT_SHARE_OF_LEASE = 0.9


async def deliver_batch(rt: Runtime, client_id: str, delivery_ids: Sequence[str]) -> int:
    """Claim what is due among `delivery_ids` and deliver it; how many were claimed.

    Deliveries of channels that settle on claim (in-app) are delivered by their claim
    (app/notifications/settle.py); the rest are claimed under a lease, attempted, and
    their results written."""
    settled = 0
    channels = settling_channels(rt)
    if channels and not rt.shutting_down.is_set():
        done = {s.id for s in await settle_batch(rt, client_id, delivery_ids, channels)}
        if len(done) == len(delivery_ids):
            return len(done)
        settled = len(done)
        delivery_ids = [i for i in delivery_ids if i not in done]
    async with rt.db.session() as session:
        claimed = await deliveries.claim_many(
            session,
            client_id,
            delivery_ids,
            now=utcnow(),
            lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
        )
        # Read in the claim's transaction: no transaction of its own (two round trips).
        loaded = await load(rt, session, client_id, claimed)
        await session.commit()
    await _run(rt, client_id, claimed, loaded, DELIVERY_CONCURRENCY)
    return settled + len(claimed)


async def _run(
    rt: Runtime, client_id: str, claimed: list[Delivery], loaded: Loaded, concurrency: int
) -> set[OutcomeKind]:
    if not claimed:
        return set()
    finisher = ResultWriter(
        rt, client_id, len(claimed), on_deferred=lambda given_back: _wait(rt, given_back)
    )
    limit = asyncio.Semaphore(concurrency)
    in_app: list[AttemptResult] = []
    batched: dict[str, list[Delivery]] = defaultdict(list)
    one_by_one: list[Delivery] = []
    batch_senders = {name for name, channel in rt.channels.items() if _sends_batches(channel)}
    for d in claimed:
        (batched[d.channel] if d.channel in batch_senders else one_by_one).append(d)

    def record(results: list[AttemptResult]) -> None:
        observe_many(results, rt.settings.delivery_attempt_limit)
        for result in results:
            if result.outcome.kind is OutcomeKind.DELIVERED:
                channel = rt.channels.get(result.delivery.channel)
                if channel is not None and channel.stores_inbox_item:
                    # An inbox item's delivery (in-app): pushed to live connections after
                    # the batch.
                    in_app.append(result)
        finisher.put_many(results)

    async def one(delivery: Delivery) -> None:
        notification = loaded.notifications.get(delivery.notification_id)
        if notification is None:  # deleted with its client meanwhile: nothing to record
            finisher.skip()
            return
        async with limit:
            outcome = await _attempt(rt, delivery, notification, loaded)
        record([AttemptResult(delivery, notification, outcome)])

    async def batch(name: str, deliveries: list[Delivery]) -> None:
        record(await _attempt_batch(rt, rt.channels[name], deliveries, loaded, finisher))

    results = await asyncio.gather(
        finisher.run(),
        *(batch(name, ds) for name, ds in batched.items()),
        *(one(d) for d in one_by_one),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            # Unrecorded rows keep their lease; the sweep re-claims them when it expires.
            log.error("delivering failed", exc_info=result, extra={"client_id": client_id})
    # Recorded delivered by now: push them to live connections, set-based.
    await push_delivered(rt.part(InAppPush), in_app)
    return finisher.kinds


def _sends_batches(channel: Channel) -> bool:
    # A cap's slot is taken per delivery before its quota is counted: capped channels
    # send one by one.
    return isinstance(channel, BatchSender) and not isinstance(channel, Capped)


def _ready(
    rt: Runtime, delivery: Delivery, notification: Notification, loaded: Loaded
) -> tuple[Channel, DeliveryTarget, ChannelContext] | Outcome:
    """What an attempt needs, or the outcome that stands for it when it cannot be made
    (one of our limits defers it, or it cannot be sent)."""
    if rt.shutting_down.is_set():
        # Due again for another worker's next sweep (or this one's after a restart): one
        # interval ahead, so the row is due only after this give-back has committed — a
        # sweep rings rows that fall due after its previous look, never one already due
        # when it looked (and ringing it here could reach this stopping worker itself).
        return Outcome(
            OutcomeKind.DEFER,
            retry_after=rt.settings.DELIVERY_SWEEP_INTERVAL_SECONDS,
            error="the worker is shutting down",
        )
    limit = rt.settings.delivery_attempt_limit
    if delivery.attempts > limit:
        # Only a worker dying mid-attempt, again and again, gets here (a poison delivery).
        return Outcome(OutcomeKind.FAILED, error=f"no result after {limit} attempts")
    channel = rt.channels.get(delivery.channel)
    if channel is None:
        # A worker deployed without a plug-in the API has: ours to fix, not the delivery's
        # loss. It stays due; a worker that has the channel (the sweep rings it) sends it.
        log.warning("channel %r is not loaded in this worker", delivery.channel)
        return Outcome(OutcomeKind.DEFER, error=f"channel {delivery.channel!r} is not loaded here")
    target = loaded.targets.get(delivery.id) or target_of(delivery)
    if isinstance(target, Outcome):
        return target
    ctx = ChannelContext(
        notification_id=notification.id,
        created_at=notification.created_at,
        attempt=delivery.attempts,
        metadata=notification.metadata_,
    )
    return channel, target, ctx


async def _attempt_batch(
    rt: Runtime,
    channel: Channel,
    batch: list[Delivery],
    loaded: Loaded,
    finisher: ResultWriter,
) -> list[AttemptResult]:
    """`_attempt` for a batch of one channel's deliveries (a `BatchSender`): one quota
    round trip, one `send_batch` call; never raises."""
    results: list[AttemptResult] = []
    sending: list[tuple[Delivery, Notification, DeliveryTarget, ChannelContext]] = []
    for d in batch:
        notification = loaded.notifications.get(d.notification_id)
        if notification is None:  # deleted with its client meanwhile: nothing to record
            finisher.skip()
            continue
        ready = _ready(rt, d, notification, loaded)
        if isinstance(ready, Outcome):
            results.append(AttemptResult(d, notification, ready))
        else:
            sending.append((d, notification, ready[1], ready[2]))
    refusals = await over_quota_many(rt, channel, [s[2] for s in sending], utcnow().timestamp())
    allowed = []
    for entry, refused in zip(sending, refusals, strict=True):
        if refused is not None:
            results.append(AttemptResult(entry[0], entry[1], refused))
        else:
            allowed.append(entry)
    if not allowed:
        return results
    timeout = rt.settings.DELIVERY_LEASE_SECONDS * ATTEMPT_SHARE_OF_LEASE
    sender: BatchSender = channel  # type: ignore[assignment]
    try:
        outcomes = await asyncio.wait_for(
            sender.send_batch(
                [a[2] for a in allowed],
                [a[1].content.get(channel.name, {}) for a in allowed],
                [a[3] for a in allowed],
            ),
            timeout,
        )
        if len(outcomes) != len(allowed):
            raise ValueError(f"send_batch answered {len(outcomes)} outcomes for {len(allowed)}")
    except asyncio.TimeoutError:
        error = f"timeout: the attempt took over {timeout:.0f}s"
        outcomes = [Outcome(OutcomeKind.RETRY, error=error)] * len(allowed)
    except Exception as exc:
        log.exception("channel %r raised", channel.name)
        outcomes = [Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")] * len(allowed)
    results.extend(
        AttemptResult(d, notification, outcome)
        for (d, notification, _, _), outcome in zip(allowed, outcomes, strict=True)
    )
    return results


async def _attempt(
    rt: Runtime, delivery: Delivery, notification: Notification, loaded: Loaded
) -> Outcome:
    """One attempt through the delivery's channel, unless one of our limits defers it
    first; never raises."""
    ready = _ready(rt, delivery, notification, loaded)
    if isinstance(ready, Outcome):
        return ready
    channel, target, ctx = ready
    content: dict[str, Any] = notification.content.get(delivery.channel, {})
    if not isinstance(channel, Capped) or (key := channel.capacity_key(target)) is None:
        return await _quota_then_send(rt, delivery, channel, target, content, ctx)
    # The cap's slot is taken before the quota is counted (a delivery the cap refuses must
    # not use up a quota slot it never sends in) and held through the send.
    if not channel.capacity.try_acquire(key):
        return Outcome(
            OutcomeKind.DEFER,
            capacity_key=key,
            error=f"{channel.name} has {channel.capacity.limit} in flight for {key}",
        )
    outcome: Outcome | None = None
    try:
        outcome = await _quota_then_send(
            rt, delivery, channel, target, content, replace(ctx, capacity_held=True)
        )
        return outcome
    finally:
        # A slot given back unused (the quota refused) wakes nobody: the next waiting one
        # would meet the same closed window. The refused delivery itself comes back at the
        # window's reset, and its request's release wakes the rest.
        channel.capacity.release(
            key, notify=outcome is None or outcome.kind is not OutcomeKind.DEFER
        )


async def _quota_then_send(
    rt: Runtime,
    delivery: Delivery,
    channel: Channel,
    target: DeliveryTarget,
    content: dict[str, Any],
    ctx: ChannelContext,
) -> Outcome:
    refused = await over_quota(rt, channel, target, utcnow().timestamp())
    if refused is not None:
        return refused
    timeout = rt.settings.DELIVERY_LEASE_SECONDS * ATTEMPT_SHARE_OF_LEASE
    try:
        return await asyncio.wait_for(channel.send(target, content, ctx), timeout)
    except asyncio.TimeoutError:
        return Outcome(OutcomeKind.RETRY, error=f"timeout: the attempt took over {timeout:.0f}s")
    except Exception as exc:
        log.exception("channel %r raised", delivery.channel)
        return Outcome(OutcomeKind.RETRY, error=f"{type(exc).__name__}: {exc}")


# ---- waiting for a cap's free slot (app/channels/waiting.py)


def _waiters(rt: Runtime) -> CapacityWaiters:
    if rt.waiting is None:
        rt.waiting = CapacityWaiters(rt.channels, partial(_wake, rt), rt.shutting_down)
        rt.on_stop(partial(stop_waiting, rt))
    return rt.waiting


def _wait(rt: Runtime, given_back: list[AttemptResult]) -> None:
    """Remember the deliveries a cap refused (just given back) until it frees a slot."""
    if rt.shutting_down.is_set():
        # Nothing is woken any more: rung for the next worker when this one has stopped.
        _waiters(rt).released_while_stopping(
            Waiting(r.delivery.client_id, r.delivery.id, r.delivery.attempts - 1)
            for r in given_back
        )
        return
    by_key: dict[tuple[str, str], list[Waiting]] = defaultdict(list)
    for result in given_back:
        d, key = result.delivery, result.outcome.capacity_key
        if key is not None:
            by_key[(d.channel, key)].append(Waiting(d.client_id, d.id, d.attempts - 1))
    for (channel, key), entries in by_key.items():
        _waiters(rt).add(channel, key, entries)


async def _wake(rt: Runtime, entry: Waiting) -> asyncio.Task[set[OutcomeKind]] | None:
    """Claim a waiting delivery (a slot freed) and start sending it; None if it was gone."""
    async with rt.db.session() as session:
        claimed = await deliveries.claim_many(
            session,
            entry.client_id,
            [entry.delivery_id],
            now=utcnow(),
            lease_seconds=rt.settings.DELIVERY_LEASE_SECONDS,
        )
        loaded = await load(rt, session, entry.client_id, claimed)
        await session.commit()
    if not claimed:
        return None
    return asyncio.get_running_loop().create_task(_run(rt, entry.client_id, claimed, loaded, 1))


async def stop_waiting(rt: Runtime) -> None:
    """The process stops (its consumer already has): let woken deliveries finish, make the
    ones still waiting due now, and ring for them and for those given back while stopping,
    so the next worker — running now or started later — takes them at once instead of
    after the sweep's lease-long backstop."""
    waiters = rt.waiting
    if waiters is None:
        return
    left, released = await waiters.close()
    rt.waiting = None
    by_client: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for entry in left:
        by_client[entry.client_id].append((entry.delivery_id, entry.attempts))
    try:
        async with rt.db.session() as session:
            for client_id, rows in by_client.items():
                await deferrals.hand_over(session, client_id, rows, now=utcnow())
            await session.commit()
    except Exception:
        # Nothing is lost: the rows are due, and the sweep rings them within a lease.
        log.exception("handing over waiting deliveries failed", extra={"count": len(left)})
    to_ring: dict[str, set[str]] = defaultdict(set)
    for entry in left + released:
        to_ring[entry.client_id].add(entry.delivery_id)
    for client_id, ids in to_ring.items():
        # Published by the doorbell's drain, right after this (Runtime.stop).
        await rt.doorbell.ring_deliveries(client_id, sorted(ids))
