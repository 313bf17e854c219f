"""Processing one inbound event: claim, build the action's input, act, record.

The claim/lease/fence rules are the relay's (DESIGN.md §4): a duplicate doorbell finds
the row claimed or finished and does nothing; a worker that dies mid-way leaves a lease
that expires, and the sweep rings again. Failures of the input (not JSON, a template
error, a sandbox refusal, a render past its time or memory limit) and of the action
(ActionFailed) are permanent and recorded on the event; anything else (a render process
that died on its own included) is retried on DELIVERY_RETRY_SCHEDULE with the engine's
jitter (app/leasing/retry.py), exactly as deliveries are: the row is made due later and
the beat sweep rings it then — no delayed broker message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from app.core.clock import utcnow
from app.core.doorbell import INBOUND_BATCH, InboundPair
from app.inbound import actions, repository
from app.inbound.models import InboundEvent, InboundWebhook
from app.leasing import retry
from app.leasing import sweep as leased
from app.runtime import Runtime
from app.templating import templates
from app.templating.renderer import TemplateRenderer

log = logging.getLogger("chatapi.inbound")

#: Events the sweep re-rings per kind (due, expired lease) per run.
SWEEP_BATCH = 500


class InputFailed(Exception):
    """The event's body cannot become the action's input."""


@dataclass(frozen=True)
class Result:
    """What a processing run did; `retry_in`: the row is due again in that many seconds
    (the sweep rings it then)."""

    status: str
    retry_in: float | None = None


def lease_seconds(runtime: Runtime) -> float:
    """How long a claim holds the event: INBOUND_LEASE_SECONDS.

    Settings checks it exceeds TASK_TIMEOUT_SECONDS (which cancels every runtime call a
    task makes), so a live worker never loses its lease mid-attempt.
    """
    return runtime.settings.INBOUND_LEASE_SECONDS


async def build_input(renderer: TemplateRenderer, hook: InboundWebhook, event: InboundEvent) -> Any:
    """The action's input: the parsed body, or the hook's template rendered against it (in
    a render process with time and memory limits: a runaway template fails only itself)."""
    try:
        body = orjson.loads(event.body) if event.body else None
    except orjson.JSONDecodeError as exc:
        raise InputFailed(f"the body is not JSON ({exc})") from None
    template = hook.config.get("template")
    if template is None:
        return body
    try:
        return await renderer.render(template, body, event.headers)
    except templates.TemplateFailed as exc:
        raise InputFailed(str(exc)) from None


async def process(runtime: Runtime, client_id: str, event_id: str) -> Result:
    """Claim and process one event; what happened."""
    db = runtime.db
    async with db.session() as session:
        event = await repository.claim(
            session, client_id, event_id, now=utcnow(), lease_seconds=lease_seconds(runtime)
        )
        hook = await repository.get_hook(session, client_id, event.hook_id) if event else None
        await session.commit()
    if event is None or hook is None:
        return Result("not-claimed")
    attempts = event.attempts
    job = actions.Job(client_id, hook.id, event.id, event.generation, hook.config)
    try:
        data = await build_input(runtime.renderer, hook, event)
        outcome = await actions.run(runtime, job, hook.action, data)
    except (InputFailed, actions.ActionFailed) as exc:
        return await _fail(runtime, event, attempts, str(exc))
    except Exception as exc:
        log.warning("inbound event attempt failed", exc_info=True, extra={"event_id": event.id})
        return await _retry(runtime, event, attempts, f"{type(exc).__name__}: {exc}")
    async with db.session() as session:
        await repository.mark_processed(
            session, client_id, event.id, attempts=attempts, outcome=outcome, now=utcnow()
        )
        await session.commit()
    return Result("processed")


async def _retry(runtime: Runtime, event: InboundEvent, attempts: int, reason: str) -> Result:
    """Due again after the shared jittered schedule (the sweep rings it then), or the dead
    letter once the attempts are spent."""
    delay = retry.next_delay(runtime.settings.DELIVERY_RETRY_SCHEDULE, attempts)
    if delay is None:
        return await _fail(runtime, event, attempts, f"gave up after {attempts} attempts: {reason}")
    now = utcnow()
    async with runtime.db.session() as session:
        await repository.mark_retrying(
            session,
            event.client_id,
            event.id,
            attempts=attempts,
            error=reason,
            next_attempt_at=now + timedelta(seconds=delay),
            now=now,
        )
        await session.commit()
    return Result("retrying", retry_in=delay)


async def _fail(runtime: Runtime, event: InboundEvent, attempts: int, reason: str) -> Result:
    async with runtime.db.session() as session:
        await repository.mark_failed(
            session, event.client_id, event.id, attempts=attempts, error=reason, now=utcnow()
        )
        await session.commit()
    return Result("failed")


async def due_for_sweep(runtime: Runtime) -> list[list[InboundPair]]:
    """Events to ring for — due pending ones (retries among them) and expired leases,
    bounded per kind — as batches of (client_id, event_id), one doorbell message each."""
    async with runtime.db.read_session() as session:
        rows = await repository.sweep(session, now=utcnow(), page=SWEEP_BATCH, max_rows=SWEEP_BATCH)
    return leased.batches(((r.client_id, r.id) for r in rows), INBOUND_BATCH)
