"""`/analytics`: the client's activity (master key)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request

from app.analytics import service
from app.analytics.schemas import AnalyticsSummary
from app.api.deps import MasterDep, ReadSessionDep
from app.core.clock import utcnow
from app.core.errors import Unprocessable
from app.core.openapi import problems

router = APIRouter(prefix="/analytics", tags=["analytics"])
DEFAULT_PERIOD = timedelta(days=1)


@router.get("/summary", response_model=AnalyticsSummary, responses=problems(422))
async def summary(
    request: Request,
    principal: MasterDep,
    session: ReadSessionDep,
    since: datetime | None = Query(
        default=None, description="Start (inclusive); default: `until` - 24 h."
    ),
    until: datetime | None = Query(default=None, description="End (exclusive); default: now."),
) -> AnalyticsSummary:
    """Messages sent, rooms by type and state, notifications by status, deliveries by
    channel and status, delivery latency p50/p95 (accepted → delivered), failed
    deliveries and live connections, for `[since, until)`."""
    end = _aware(until, "until") if until is not None else utcnow()
    start = _aware(since, "since") if since is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise Unprocessable("`since` must be before `until`")
    hub: Any = getattr(request.app.state, "hub", None)
    live = hub.client_connection_count(principal.client_id) if hub is not None else 0
    return await service.summary(session, principal.client_id, start, end, live)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise Unprocessable(f"`{name}` needs a timezone (e.g. 2026-01-01T00:00:00Z)")
    return value
