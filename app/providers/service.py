"""Providers: created and changed with their type's settings validated and their secrets
sealed, shown without secrets, checked (`test`), and deleted unless a route names them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.smtp_target import SmtpTargetPolicy
from app.channels.ssrf import (
    Resolver,
    TargetRefused,
    TargetUnresolvable,
    check_url,
    webhook_refusal,
)
from app.core.clock import utcnow
from app.core.config import Settings
from app.core.crypto import SecretBox, SecretBoxError
from app.core.errors import AppError, Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.providers import accounts, repository
from app.providers.base import (
    HttpProviderSettings,
    ProviderCheckFailed,
    ProviderSettings,
    ProviderType,
)
from app.providers.builtin.smtp import SmtpSettings
from app.providers.models import Provider
from app.providers.schemas import ProviderCreate, ProviderPatch, ProviderTestResult

# Resolving a host when settings are saved must not hold the request for long.
RESOLVE_TIMEOUT_SECONDS = 5.0


class ProviderUnavailable(AppError):
    """The provider's service could not be used (`POST /providers/{id}/test`)."""

    status, code, title = 502, "provider-unavailable", "The provider did not work"


def type_of(types: Mapping[str, ProviderType], name: str) -> ProviderType:
    """The installed type `name`, or 422 naming the installed ones."""
    found = types.get(name)
    if found is None:
        installed = ", ".join(sorted(types)) or "none"
        raise Unprocessable(
            f"unknown provider type {name!r}; installed: {installed}", loc=("body", "type")
        )
    return found


async def check_targets(
    settings: ProviderSettings, config: Settings, resolver: Resolver | None = None
) -> None:
    """Refuse (422, naming the setting) an address the delivery would refuse: an HTTP
    provider's `base_url` under the webhook address policy (WEBHOOK_ALLOW_PRIVATE_TARGETS), an
    SMTP host under the SMTP one (SMTP_ALLOW_PRIVATE_TARGETS, SMTP_ALLOWED_HOSTS). Deliveries
    check again before every connection; this tells the client now."""
    if isinstance(settings, HttpProviderSettings):
        loc = ("body", "settings", "base_url")
        try:
            await asyncio.wait_for(
                check_url(
                    settings.base_url, config.WEBHOOK_ALLOW_PRIVATE_TARGETS, resolver=resolver
                ),
                RESOLVE_TIMEOUT_SECONDS,
            )
        except TargetRefused as exc:
            raise Unprocessable(
                f"settings.base_url refused: {webhook_refusal(exc)}", loc=loc
            ) from None
        except TargetUnresolvable as exc:
            raise Unprocessable(f"settings.base_url refused: {exc}", loc=loc) from None
        except asyncio.TimeoutError:
            raise Unprocessable(
                "settings.base_url refused: resolving its host timed out", loc=loc
            ) from None
    if isinstance(settings, SmtpSettings):
        policy = SmtpTargetPolicy.from_settings(config)
        try:
            await policy.check(settings.host, settings.port, timeout=RESOLVE_TIMEOUT_SECONDS)
        except (TargetRefused, TargetUnresolvable) as exc:
            raise Unprocessable(
                f"settings.host refused: {exc}", loc=("body", "settings", "host")
            ) from None


async def create_provider(
    session: AsyncSession,
    box: SecretBox,
    config: Settings,
    types: Mapping[str, ProviderType],
    client_id: str,
    body: ProviderCreate,
) -> Provider:
    """Create a provider (settings validated and checked, secrets sealed); 409 on a name the
    client already uses."""
    provider_type = type_of(types, body.type)
    settings = accounts.validated(provider_type, body.settings)
    await check_targets(settings, config)
    plain, sealed = accounts.stored(box, settings)
    now = utcnow()
    row = Provider(
        id=new_id(),
        client_id=client_id,
        name=body.name,
        type=provider_type.type,
        channel=provider_type.channel,
        settings=plain,
        secrets_sealed=sealed,
        enabled=body.enabled,
        created_at=now,
        updated_at=now,
    )
    try:
        await repository.add(session, row)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"a provider named {body.name!r} already exists") from None
    return row


async def get_provider(session: AsyncSession, client_id: str, provider_id: str) -> Provider:
    """One provider, or 404."""
    row = await repository.get(session, client_id, provider_id)
    if row is None:
        raise NotFound("No such provider")
    return row


async def list_providers(
    session: AsyncSession, client_id: str, limit: int, after: str | None
) -> list[Provider]:
    """`limit + 1` providers after the cursor."""
    return await repository.list_page(session, client_id, limit=limit, after=after)


def merged_settings(
    box: SecretBox, provider_type: ProviderType, row: Provider, patch: Mapping[str, Any]
) -> tuple[ProviderSettings, dict[str, str]]:
    """The settings after a PATCH, and the sealed secrets it left as they were. A secret left
    out keeps its sealed value; `null` removes a setting (validation says if it may go)."""
    try:
        current = accounts.raw_settings(box, row)
    except SecretBoxError as exc:
        raise Unprocessable(f"the provider's stored secrets cannot be opened: {exc}") from None
    merged = {**current, **patch}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
    settings = accounts.validated(provider_type, merged)
    keep = {k: v for k, v in row.secrets_sealed.items() if k not in patch}
    return settings, keep


async def update_provider(
    session: AsyncSession,
    box: SecretBox,
    config: Settings,
    types: Mapping[str, ProviderType],
    client_id: str,
    provider_id: str,
    patch: ProviderPatch,
) -> Provider:
    """Rename, enable/disable, or merge settings (checked again like at creation)."""
    row = await get_provider(session, client_id, provider_id)
    changes = patch.model_dump(exclude_unset=True)
    if changes.get("settings") is not None:
        provider_type = type_of(types, row.type)
        settings, keep = merged_settings(box, provider_type, row, changes["settings"])
        await check_targets(settings, config)
        row.settings, row.secrets_sealed = accounts.stored(box, settings, keep)
    old_name = row.name
    if changes.get("name") is not None and changes["name"] != old_name:
        await _refuse_if_routed(session, client_id, old_name, "renamed")
        row.name = changes["name"]
    if changes.get("enabled") is not None:
        row.enabled = changes["enabled"]
    row.updated_at = utcnow()
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"a provider named {changes['name']!r} already exists") from None
    return row


async def _refuse_if_routed(session: AsyncSession, client_id: str, name: str, verb: str) -> None:
    """409 naming the routes that name the provider: a route must never name a provider
    that does not exist (take it out of the route first)."""
    naming = [
        r.channel
        for r in await repository.routes_of(session, client_id)
        if name in r.providers or name in (r.bulk_providers or [])
    ]
    if naming:
        routes = ", ".join(f"/routing/{channel}" for channel in sorted(naming))
        raise Conflict(
            f"provider {name!r} is named by {routes}: take it out of the route before it is {verb}"
        )


async def delete_provider(session: AsyncSession, client_id: str, provider_id: str) -> None:
    """Delete a provider no route names (409 naming the route otherwise), or 404."""
    row = await get_provider(session, client_id, provider_id)
    await _refuse_if_routed(session, client_id, row.name, "deleted")
    await repository.remove(session, client_id, provider_id)
    await session.commit()


async def test_provider(
    session: AsyncSession,
    box: SecretBox,
    types: Mapping[str, ProviderType],
    client_id: str,
    provider_id: str,
    to: str | None,
) -> ProviderTestResult:
    """Run the type's check on the account: 200 with what was done, 422 when the account
    cannot be used as stored, 502 with the service's reason."""
    row = await get_provider(session, client_id, provider_id)
    provider_type = type_of(types, row.type)
    try:
        account = accounts.opened(box, provider_type, row)
    except SecretBoxError as exc:
        raise Unprocessable(f"the provider's stored secrets cannot be opened: {exc}") from None
    # The session is not needed while talking to the service (seconds): give it back.
    await session.close()
    try:
        detail = await provider_type.check(account, to)
    except ProviderCheckFailed as exc:
        raise ProviderUnavailable(f"{row.name}: {exc}") from None
    return ProviderTestResult(ok=True, detail=detail)
