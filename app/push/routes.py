"""`/me/push-subscriptions`: a user's Web Push subscriptions and FCM tokens (user key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.api.deps import ReadSessionDep, SecretBoxDep, SessionDep, SettingsDep, UserDep
from app.auth.principal import Principal
from app.core.openapi import problems
from app.push import service
from app.push.schemas import PushSubscriptionIn, PushSubscriptionList, PushSubscriptionOut

router = APIRouter(prefix="/me/push-subscriptions", tags=["push"])

_CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": PushSubscriptionOut, "description": "Already registered"},
    **problems(409, 422),
}


def _user_id(principal: Principal) -> str:
    assert principal.user_id is not None  # a user key (the dependency checked)
    return principal.user_id


@router.post(
    "",
    response_model=PushSubscriptionOut,
    status_code=201,
    responses=_CREATE_RESPONSES,
)
async def subscribe(
    body: PushSubscriptionIn,
    principal: UserDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> PushSubscriptionOut:
    """Register the browser's `PushSubscription` JSON (`endpoint`, `keys.p256dh`,
    `keys.auth`) or an FCM registration token (`{"fcm_token": ...}`) for the caller.

    201 when new; the same endpoint (or token) again is 200 with the existing subscription
    (new keys replace the old). 422 when the endpoint is not https, a key does not decode to
    its size (p256dh: a 65-byte P-256 point; auth: 16 bytes), or both kinds are sent; 409 past
    50 subscriptions per user."""
    row, created = await service.subscribe(
        session,
        box,
        settings,
        principal.client_id,
        _user_id(principal),
        body,
        request.headers.get("user-agent"),
    )
    if not created:
        response.status_code = 200
    return PushSubscriptionOut.of(row)


@router.get("", response_model=PushSubscriptionList)
async def list_subscriptions(principal: UserDep, session: ReadSessionDep) -> PushSubscriptionList:
    """The caller's push subscriptions, oldest first (auth secrets are never returned)."""
    rows = await service.list_subscriptions(session, principal.client_id, _user_id(principal))
    return PushSubscriptionList(data=[PushSubscriptionOut.of(r) for r in rows])


@router.delete("/{subscription_id}", status_code=204, responses=problems(404))
async def unsubscribe(subscription_id: str, principal: UserDep, session: SessionDep) -> Response:
    """Remove one of the caller's subscriptions (a browser that unsubscribed, a logout).
    Another user's subscription is 404."""
    await service.unsubscribe(session, principal.client_id, _user_id(principal), subscription_id)
    return Response(status_code=204)
