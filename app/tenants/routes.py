"""`/clients`: created by the operator, read and configured with the master key."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Body

from app.api.deps import (
    AdminDep,
    AuthenticatorDep,
    LimitsDep,
    MasterDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
)
from app.core.config import Settings
from app.core.openapi import problems
from app.ratelimit.policies import ClientLimits
from app.tenants import service
from app.tenants.models import Client
from app.tenants.schemas import (
    ClientCreate,
    ClientCreated,
    ClientOut,
    ClientPatch,
    ClientRateLimits,
    RotatedKey,
    RotateKeyRequest,
)

router = APIRouter(prefix="/clients", tags=["clients"])


def _out(client: Client, settings: Settings) -> ClientOut:
    effective = service.effective_settings(client)
    stored = dict(client.settings or {})
    # Show the limits in force (the client's overrides over the deployment's defaults,
    # within its caps) and the caps. Not validated: a deployment's default or cap may
    # exceed what even the admin key may set.
    limits = ClientLimits.from_stored(settings, stored)
    effective.rate_limits = ClientRateLimits.model_construct(**asdict(limits))
    caps = ClientLimits.caps(settings, stored)
    effective.rate_limit_caps = ClientRateLimits.model_construct(**asdict(caps))
    return ClientOut(
        id=client.id,
        name=client.name,
        slug=client.slug,
        settings=effective,
        created_at=client.created_at,
    )


@router.post("", status_code=201, response_model=ClientCreated, responses=problems(409))
async def create_client(
    body: ClientCreate, _: AdminDep, session: SessionDep, settings: SettingsDep
) -> ClientCreated:
    """Create a client; its master key is in this answer only."""
    client, master_key = await service.create_client(
        session, body.name, body.slug, settings.BCRYPT_ROUNDS
    )
    return ClientCreated(id=client.id, name=client.name, slug=client.slug, master_key=master_key)


@router.get("/me", response_model=ClientOut)
async def get_me(principal: MasterDep, session: ReadSessionDep, settings: SettingsDep) -> ClientOut:
    """The caller's client and its settings."""
    return _out(await service.get_client(session, principal.client_id), settings)


@router.patch("/me", response_model=ClientOut)
async def patch_me(
    body: ClientPatch,
    principal: MasterDep,
    session: SessionDep,
    settings: SettingsDep,
    limits: LimitsDep,
) -> ClientOut:
    """Change the name or settings (merged into the current ones). A rate limit above the
    client's cap (`settings.rate_limit_caps`) is a 422 naming the cap."""
    client = await service.update_client(session, principal.client_id, body, settings)
    if body.changes().rate_limits is not None:
        await limits.announce_changed(client.id)
    return _out(client, settings)


@router.post("/me/rotate-key", response_model=RotatedKey)
async def rotate_key(
    principal: MasterDep,
    session: SessionDep,
    settings: SettingsDep,
    authenticator: AuthenticatorDep,
    body: RotateKeyRequest | None = Body(default=None),
) -> RotatedKey:
    """A new master key; the old ones stop working after `grace_seconds`."""
    grace = body.grace_seconds if body else 0
    presented, expire_at, old_ids = await service.rotate_master_key(
        session, principal.client_id, grace, settings.BCRYPT_ROUNDS
    )
    if grace == 0:
        await authenticator.announce_revoked(old_ids)
    else:
        await authenticator.announce_changed(old_ids)
    return RotatedKey(master_key=presented, old_keys_expire_at=expire_at)


# Declared after the `/me` routes, which match first: `me` is never taken for an id.
@router.get("/{client_id}", response_model=ClientOut, responses=problems(404))
async def get_client(
    client_id: str, _: AdminDep, session: ReadSessionDep, settings: SettingsDep
) -> ClientOut:
    """Any client and its settings (the operator's view, admin key)."""
    return _out(await service.get_client(session, client_id), settings)


@router.patch("/{client_id}", response_model=ClientOut, responses=problems(404))
async def patch_client(
    client_id: str,
    body: ClientPatch,
    _: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    limits: LimitsDep,
) -> ClientOut:
    """Change any client's name or settings (admin key). Rate limits may be set past the
    deployment's caps (RATE_LIMIT_MAX_*); each one set becomes the most the client may set
    that limit to itself, and `null` gives it back the deployment's default and cap."""
    client = await service.admin_update_client(session, client_id, body)
    if body.changes().rate_limits is not None:
        await limits.announce_changed(client.id)
    return _out(client, settings)
