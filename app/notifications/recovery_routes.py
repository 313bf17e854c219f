"""`POST /webhook-endpoints/{id}/recover` and `POST /notifications/retry`: bulk recovery."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.api.deps import MasterDep, SessionDep, runtime_of
from app.core.openapi import problems
from app.notifications import recovery
from app.notifications.recovery_repository import FailedFilter

router = APIRouter()


class RecoverRequest(BaseModel):
    """Re-queue the endpoint's failed deliveries created since `since`."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime


class RetryFilter(BaseModel):
    """Which failed deliveries to re-queue: every filter given must match."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["failed"] = Field(
        default="failed", description="Only failed deliveries are re-queued."
    )
    channel: str | None = Field(default=None, max_length=32)
    endpoint_id: str | None = Field(default=None, max_length=26)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None


class Requeued(BaseModel):
    """How many deliveries this call re-queued; `has_more`: more matched, call again."""

    requeued: int
    has_more: bool = Field(
        description=f"More than {recovery.RECOVER_BATCH} matched: the same call again takes "
        "the next batch."
    )


@router.post(
    "/webhook-endpoints/{endpoint_id}/recover",
    response_model=Requeued,
    responses=problems(404, 422),
    tags=["webhooks"],
)
async def recover_endpoint(
    endpoint_id: str,
    body: RecoverRequest,
    principal: MasterDep,
    session: SessionDep,
    request: Request,
) -> Requeued:
    """Re-queue every failed delivery to this endpoint since `since` with a fresh attempt
    budget (at most a batch per call: `has_more` says call again). Idempotent: a second call
    finds nothing failed and re-queues nothing."""
    since: datetime = body.since
    count, more = await recovery.recover_endpoint(
        session, principal.client_id, endpoint_id, since, runtime_of(request).doorbell
    )
    return Requeued(requeued=count, has_more=more)


@router.post(
    "/notifications/retry",
    response_model=Requeued,
    responses=problems(422),
    tags=["notifications"],
)
async def retry_failed(
    body: RetryFilter, principal: MasterDep, session: SessionDep, request: Request
) -> Requeued:
    """Re-queue the tenant's failed deliveries matching the filters (fresh attempt budget),
    oldest first, at most a batch per call (`has_more`: call again)."""
    where = FailedFilter(
        channel=body.channel,
        endpoint_id=body.endpoint_id,
        created_after=body.created_after,
        created_before=body.created_before,
    )
    count, more = await recovery.requeue_failed(
        session, principal.client_id, where, runtime_of(request).doorbell
    )
    return Requeued(requeued=count, has_more=more)
