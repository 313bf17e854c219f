"""`/auth/login`, `/auth/logout` and `/keys`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.deps import (
    AuthenticatorDep,
    ClientKeyDep,
    MasterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    UserDep,
)
from app.auth import connect_tokens, service
from app.auth import login as login_service
from app.auth.models import ApiKey
from app.auth.schemas import (
    ConnectTokenOut,
    ConnectTokenRequest,
    KeyOut,
    KeyPage,
    LoginRequest,
    LoginResponse,
    WhoAmI,
)
from app.core.openapi import problems
from app.core.pagination import PageParams, make_page, page_params
from app.users.schemas import UserOut

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginResponse, responses=problems(404))
async def login(
    body: LoginRequest,
    principal: MasterDep,
    session: SessionDep,
    settings: SettingsDep,
    authenticator: AuthenticatorDep,
) -> LoginResponse:
    """A new user key; every earlier key of the user on that device stops working at once,
    everywhere (and the least recently used device's past `MAX_DEVICES_PER_USER`)."""
    device_id = body.device_id or login_service.DEFAULT_DEVICE
    presented, user, scopes, expires_at, revoked = await login_service.login(
        session,
        principal.client_id,
        user_id=body.user_id,
        external_id=body.external_id,
        scopes=[s.value for s in body.scopes] if body.scopes else None,
        ttl_seconds=body.ttl_seconds,
        rounds=settings.BCRYPT_ROUNDS,
        device_id=device_id,
        max_devices=settings.MAX_DEVICES_PER_USER,
    )
    await authenticator.logged_in(
        presented,
        client_id=principal.client_id,
        user_id=user.id,
        scopes=scopes,
        expires_at=expires_at,
        revoked=revoked,
    )
    return LoginResponse(
        api_key=presented,
        user=UserOut.of(user),
        scopes=scopes,
        expires_at=expires_at,
        device_id=device_id,
    )


@router.post("/auth/connect-token", response_model=ConnectTokenOut, responses=problems(403, 404))
async def connect_token(
    principal: ClientKeyDep,
    session: SessionDep,
    settings: SettingsDep,
    body: ConnectTokenRequest | None = None,
) -> ConnectTokenOut:
    """A short-lived, single-use token that opens one socket (never a REST call) as the
    calling key (user key: itself; master key: `user_id`, or a master socket without it)."""
    token, expires_at = await connect_tokens.mint(
        session,
        principal,
        body.user_id if body is not None else None,
        settings.CONNECT_TOKEN_TTL_SECONDS,
    )
    return ConnectTokenOut(token=token, expires_at=expires_at)


@router.post("/auth/logout", status_code=204)
async def logout(
    principal: UserDep, session: SessionDep, authenticator: AuthenticatorDep
) -> Response:
    """Revoke the key this request was made with."""
    await login_service.logout(session, principal.client_id, principal.key_id)
    await authenticator.announce_revoked([principal.key_id])
    return Response(status_code=204)


@router.get("/auth/me", response_model=WhoAmI)
async def whoami(principal: ClientKeyDep) -> WhoAmI:
    """The presented key: its kind, client, user and scopes."""
    return WhoAmI(
        key_id=principal.key_id,
        kind=principal.kind.value,
        client_id=principal.client_id,
        user_id=principal.user_id,
        scopes=sorted(principal.scopes),
        expires_at=principal.expires_at,
    )


def _key_out(row: ApiKey, authenticator: AuthenticatorDep) -> KeyOut:
    return KeyOut(
        id=row.id,
        kind=row.kind,
        user_id=row.user_id,
        scopes=row.scopes,
        created_at=row.created_at,
        last_used_at=authenticator.pending_last_used(row.id) or row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        device_id=row.device_id,
    )


@router.get("/keys", response_model=KeyPage)
async def list_keys(
    principal: MasterDep,
    session: ReadSessionDep,
    authenticator: AuthenticatorDep,
    page: Annotated[PageParams, Depends(page_params)],
    user_id: Annotated[str | None, Query(max_length=26)] = None,
) -> KeyPage:
    """The client's keys (never a secret or a hash)."""
    rows = await service.list_keys(session, principal.client_id, page.limit, page.cursor, user_id)
    items, has_more, cursor = make_page(list(rows), page.limit, "id")
    return KeyPage(
        data=[_key_out(r, authenticator) for r in items], has_more=has_more, next_cursor=cursor
    )


@router.delete("/keys/{key_id}", status_code=204, responses=problems(409))
async def revoke_key(
    key_id: str, principal: MasterDep, session: SessionDep, authenticator: AuthenticatorDep
) -> Response:
    """Revoke a key at once, in every process."""
    await service.revoke_key(session, principal.client_id, key_id)
    await authenticator.announce_revoked([key_id])
    return Response(status_code=204)
