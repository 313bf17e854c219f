"""Processing one inbound event: claim, build the action's input, act, record.

The claim/lease/fence rules are the relay's (DESIGN.md §4): a duplicate doorbell finds
the row claimed or finished and does nothing; a worker that dies mid-way leaves a lease
that expires, and the sweep rings again. Failures of the input (not JSON, a template
error, a sandbox refusal, a render past its time or memory limit) and of the action
(ActionFailed) are permanent and recorded on the event; anything else (a render process
that died on its own included) is retried on DELIVERY_RETRY_SCHEDULE.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from app.core.clock import utcnow
from app.inbound import actions, repository
from app.inbound.models import InboundEvent, InboundWebhook
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
    """What a processing run did; `retry_in` asks for a doorbell after that many seconds."""

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
        schedule = runtime.settings.DELIVERY_RETRY_SCHEDULE
        reason = f"{type(exc).__name__}: {exc}"
        if attempts > len(schedule):
            return await _fail(
                runtime, event, attempts, f"gave up after {attempts} attempts: {reason}"
            )
        delay = float(schedule[attempts - 1])
        async with db.session() as session:
            await repository.mark_retrying(
                session,
                client_id,
                event.id,
                attempts=attempts,
                error=reason,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                now=utcnow(),
            )
            await session.commit()
        return Result("retrying", retry_in=delay)
    async with db.session() as session:
        await repository.mark_processed(
            session, client_id, event.id, attempts=attempts, outcome=outcome, now=utcnow()
        )
        await session.commit()
    return Result("processed")


async def _fail(runtime: Runtime, event: InboundEvent, attempts: int, reason: str) -> Result:
    async with runtime.db.session() as session:
        await repository.mark_failed(
            session, event.client_id, event.id, attempts=attempts, error=reason, now=utcnow()
        )
        await session.commit()
    return Result("failed")


async def due_for_sweep(runtime: Runtime) -> list[repository.DueEvent]:
    """Events to ring for: due pending ones and expired leases (bounded per kind)."""
    now = utcnow()
    async with runtime.db.read_session() as session:
        due = await repository.due_events(session, now=now, limit=SWEEP_BATCH)
        expired = await repository.expired_leases(session, now=now, limit=SWEEP_BATCH)
    return due + expired
