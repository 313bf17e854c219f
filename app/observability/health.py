"""Liveness and readiness: ready names each dependency that does not answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from app.core.errors import problem_response

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/health/live")
async def live() -> dict[str, str]:
    """200 while the process runs."""
    return {"status": "ok"}


async def _queue(state: Any) -> tuple[str, dict[str, Any]]:
    """The delivery queue's depth and the oldest due delivery's age: "degraded" (still
    ready: the API works, the relay lags) when that age is over QUEUE_DEGRADED_AGE_SECONDS."""
    from app.notifications.queue import queue_stats

    threshold = state.settings.QUEUE_DEGRADED_AGE_SECONDS
    try:
        stats = await asyncio.wait_for(queue_stats(state.db), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return "degraded", {"error": f"failed: {type(exc).__name__}"}
    details: dict[str, Any] = {
        "depth": stats.depth,
        "oldest_due_age_seconds": round(stats.oldest_due_age_seconds, 3),
        "degraded_after_seconds": threshold,
    }
    return ("degraded" if stats.oldest_due_age_seconds > threshold else "ok"), details


def _rate_limits(state: Any, redis_answers: bool) -> str:
    """How rate limits stand: "enforced", "off" (RATE_LIMIT_ENABLED=false), or failing open
    while their storage does not answer (app/ratelimit/fail_open.py). Not a readiness check
    of its own: the API serves meanwhile, uncounted."""
    if not state.settings.RATE_LIMIT_ENABLED:
        return "off"
    if state.redis is not None and (not redis_answers or state.limits.fail_open.failing):
        return "fail-open: redis unavailable"
    return "enforced"


@router.get("/health/ready", response_model=None)
async def ready(request: Request) -> Response:
    """200 when the database (and Redis, when configured) answer; else 503 naming the failure.

    The answer also shows the delivery queue (depth, oldest due delivery's age); `status`
    is "degraded" when that age is over QUEUE_DEGRADED_AGE_SECONDS (still 200). And
    `rate_limits`: "enforced", "off", or "fail-open: redis unavailable"."""
    state = request.app.state
    checks: dict[str, Any] = {}
    try:
        await state.db.ping(CHECK_TIMEOUT_SECONDS)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the name says which
        checks["database"] = f"failed: {type(exc).__name__}"
    if state.redis is not None:
        try:
            await asyncio.wait_for(state.redis.ping(), CHECK_TIMEOUT_SECONDS)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"failed: {type(exc).__name__}"
    failing = [name for name, result in checks.items() if result != "ok"]
    rate_limits = _rate_limits(state, checks.get("redis") == "ok")
    if not failing:
        status, queue = await _queue(state)
        body = {"status": status, "checks": checks, "queue": queue, "rate_limits": rate_limits}
        return JSONResponse(body)
    return problem_response(
        503,
        instance=request.url.path,
        code="not-ready",
        detail="not ready: " + ", ".join(failing),
        extra={"checks": checks, "rate_limits": rate_limits},
    )
