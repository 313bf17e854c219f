"""`/notifications`: send through the relay, read, list, cancel, retry (master key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BeforeValidator

from app.api.deps import (
    BusDep,
    MasterDep,
    ReadSessionDep,
    SessionDep,
    master_of,
    runtime_of,
)
from app.api.direct_route import direct_route
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.notifications import service
from app.notifications.push import InAppPush
from app.notifications.schemas import (
    AttemptOut,
    AttemptPage,
    NotificationOut,
    NotificationPage,
    NotificationStatus,
    NotificationSummary,
    SendRequest,
)

router = APIRouter(prefix="/notifications", tags=["notifications"])


def _iso_only(value: object) -> object:
    # pydantic would also read a bare number as Unix seconds; the schema promises ISO 8601.
    if isinstance(value, (int, float)) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_only)]


async def send_notification(
    body: SendRequest,
    principal: MasterDep,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Same key within 24 h: the first notification (200), never a second send",
        ),
    ] = None,
) -> Response:
    """Store the notification and one delivery per (channel, recipient), then deliver in
    the background: 202. Webhook deliveries go one per endpoint. 413 when the content times
    the recipients exceeds NOTIFICATION_MAX_TOTAL_BYTES (nothing is stored)."""
    # The hot path: the session is opened here rather than by a dependency (a yielding
    # dependency costs its own context manager and exit stack on every request).
    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        result = await service.send(
            session,
            principal.client_id,
            body,
            channels=runtime.channels,
            max_total_bytes=runtime.settings.NOTIFICATION_MAX_TOTAL_BYTES,
            doorbell=runtime.doorbell,
            header_key=idempotency_key,
            push=runtime.part(InAppPush),
            db=runtime.db,
        )
    return Response(
        result.json(), status_code=202 if result.created else 200, media_type="application/json"
    )


async def _send_direct(request: Request, body: Any, headers: dict[str, str | None]) -> Response:
    # A well-formed send without FastAPI's dependency solving (app/api/direct_route.py):
    # the same key check, then the endpoint itself.
    principal = await master_of(request)
    return await send_notification(body, principal, request, headers[IDEMPOTENCY_HEADER])


IDEMPOTENCY_HEADER = "idempotency-key"
router.add_api_route(
    "/send",
    send_notification,
    methods=["POST"],
    status_code=202,
    response_model=NotificationOut,
    responses={
        200: {
            "model": NotificationOut,
            "description": "The idempotency key was used within 24 h: the first notification",
        },
        **problems(409),
    },
    route_class_override=direct_route(_send_direct, SendRequest, {IDEMPOTENCY_HEADER: (1, 255)}),
)


@router.get("", response_model=NotificationPage)
async def list_notifications(
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
    status: Annotated[NotificationStatus | None, Query()] = None,
    channel: Annotated[str | None, Query(min_length=1, max_length=16)] = None,
    created_after: Annotated[IsoTime | None, Query()] = None,
    created_before: Annotated[IsoTime | None, Query()] = None,
) -> NotificationPage:
    """The client's notifications, newest first, by cursor, with per-status delivery counts."""
    rows, counts = await service.list_notifications(
        session,
        principal.client_id,
        limit=page.limit,
        after=page.cursor,
        status=status,
        channel=channel,
        created_after=created_after,
        created_before=created_before,
    )
    items, has_more, cursor = make_page(rows, page.limit, "id")
    return NotificationPage(
        data=[NotificationSummary.of(n, counts[n.id]) for n in items],
        has_more=has_more,
        next_cursor=cursor,
    )


@router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(
    notification_id: str, principal: MasterDep, session: ReadSessionDep
) -> NotificationOut:
    """A notification with every delivery."""
    return await service.get_notification(session, principal.client_id, notification_id)


@router.get("/{notification_id}/attempts", response_model=AttemptPage)
async def list_attempts(
    notification_id: str,
    principal: MasterDep,
    session: ReadSessionDep,
    page: Annotated[PageParams, Depends(page_params)],
) -> AttemptPage:
    """Every attempt of the notification's deliveries, oldest first, by cursor."""
    rows = await service.list_attempts(
        session, principal.client_id, notification_id, limit=page.limit, after=page.cursor
    )
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    return AttemptPage(
        data=[AttemptOut.of(*row) for row in rows],
        has_more=has_more,
        next_cursor=rows[-1][0].id if has_more and rows else None,
    )


@router.post("/{notification_id}/cancel", response_model=NotificationOut)
async def cancel_notification(
    notification_id: str, principal: MasterDep, session: SessionDep, bus: BusDep
) -> NotificationOut:
    """Cancel every delivery not yet sent; one mid-attempt finishes. Nothing left to cancel
    is not an error: the answer shows the notification as it is."""
    return await service.cancel(session, principal.client_id, notification_id, bus=bus)


@router.post("/{notification_id}/retry", response_model=NotificationOut)
async def retry_notification(
    notification_id: str, principal: MasterDep, session: SessionDep, request: Request
) -> NotificationOut:
    """Re-queue the failed deliveries with a fresh attempt budget (none failed: unchanged)."""
    doorbell = runtime_of(request).doorbell
    return await service.retry(session, principal.client_id, notification_id, doorbell)
