"""Clients: creation with a first master key, settings, master key rotation."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as keys
from app.auth.principal import KeyKind
from app.core.config import RATE_LIMIT_CAPS, Settings
from app.core.errors import Conflict, NotFound, Unprocessable
from app.core.ids import new_id
from app.ratelimit.policies import DEFAULT_SETTING, ClientLimits, granted_caps
from app.tenants import repository
from app.tenants.models import Client
from app.tenants.schemas import (
    DEFAULT_ROOM_INACTIVITY_SECONDS,
    MAX_ROOM_INACTIVITY_SECONDS,
    MIN_ROOM_INACTIVITY_SECONDS,
    ClientPatch,
    ClientSettings,
)

log = logging.getLogger("chatapi.tenants")


def slugify(name: str) -> str:
    """A URL-safe slug from a display name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48]
    return slug or "client"


async def create_client(
    session: AsyncSession, name: str, slug: str | None, rounds: int
) -> tuple[Client, str]:
    """Create a client and its first master key; return both (the key is shown once)."""
    # Hashed before the first query, so no write transaction is open while bcrypt runs.
    key = await keys.new_hashed_key(rounds)
    if slug is not None:
        if await repository.slug_taken(session, slug):
            raise Conflict(f"The slug {slug!r} is taken")
    else:
        slug = slugify(name)
        if await repository.slug_taken(session, slug):
            slug = f"{slug}-{secrets.token_hex(3)}"
    client = Client(id=new_id(), name=name, slug=slug, settings={})
    repository.add(session, client)
    await session.flush()
    keys.issue_key(session, key, client_id=client.id, kind=KeyKind.master)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"The slug {slug!r} is taken") from None
    return client, key.presented


async def get_client(session: AsyncSession, client_id: str) -> Client:
    """The caller's client."""
    client = await repository.get(session, client_id)
    if client is None:
        raise NotFound("No such client")
    return client


async def find_client_by_slug(session: AsyncSession, slug: str) -> Client | None:
    """The client with `slug`, or None (public inbound URLs name clients by slug)."""
    return await repository.get_by_slug(session, slug)


def effective_settings(client: Client) -> ClientSettings:
    """The client's stored settings over the service defaults (per room type, too).

    A stored value that is no longer valid (written before the bounds existed, or straight
    into the database) is logged and replaced by its default, so one bad row never turns
    the tenant's every request into a 500.
    """
    stored: dict[str, Any] = dict(client.settings or {})
    by_type = stored.get("room_inactivity_seconds")
    stored["room_inactivity_seconds"] = DEFAULT_ROOM_INACTIVITY_SECONDS | (
        dict(by_type) if isinstance(by_type, dict) else {}
    )
    for _ in range(10):  # each round drops what failed; a handful of keys at most
        try:
            return ClientSettings.model_validate(stored)
        except ValidationError as exc:
            log.error(
                "client %s has invalid stored settings; using the defaults for them",
                client.id,
                extra={"client_id": client.id, "errors": exc.errors(include_input=False)},
            )
            for error in exc.errors():
                _drop(stored, error["loc"])
    return ClientSettings()


def _drop(stored: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    if len(loc) >= 2 and loc[0] == "room_inactivity_seconds":
        default = DEFAULT_ROOM_INACTIVITY_SECONDS.get(str(loc[1]))
        if default is None:
            stored["room_inactivity_seconds"].pop(loc[1], None)
        else:
            stored["room_inactivity_seconds"][loc[1]] = default
    elif loc:
        stored.pop(str(loc[0]), None)


async def update_client(
    session: AsyncSession, client_id: str, patch: ClientPatch, settings: Settings
) -> Client:
    """The client's own change (master key): rename and/or merge settings; per-type
    inactivity merges type by type. A rate limit above the client's cap is Unprocessable."""
    client = await get_client(session, client_id)
    stored: dict[str, Any] = dict(client.settings or {})
    changes = _changes(patch)
    limits = changes.pop("rate_limits", None)
    if limits:
        caps = ClientLimits.caps(settings, stored)
        granted = granted_caps(stored)
        for name, value in limits.items():
            cap = getattr(caps, name)
            if value > cap:
                raise Unprocessable(
                    _over_cap(name, value, cap, granted, settings),
                    loc=(*patch.loc("rate_limits"), name),
                )
        stored["rate_limits"] = dict(stored.get("rate_limits") or {}) | limits
    return await _save(session, client, stored, changes)


async def admin_update_client(session: AsyncSession, client_id: str, patch: ClientPatch) -> Client:
    """The operator's change (admin key): as the client's own, except that a rate limit may
    be set past the deployment's cap and becomes the client's cap (the most it may set
    itself), and a `null` one gives the client back the deployment's default and cap."""
    client = await get_client(session, client_id)
    stored: dict[str, Any] = dict(client.settings or {})
    changes = _changes(patch)
    changes.pop("rate_limits", None)
    requested = patch.changes().rate_limits
    if requested is not None:
        limits = dict(stored.get("rate_limits") or {})
        caps = dict(stored.get("rate_limit_caps") or {})
        for name, value in requested.model_dump(exclude_unset=True).items():
            if value is None:
                limits.pop(name, None)
                caps.pop(name, None)
            else:
                limits[name] = caps[name] = value
        stored["rate_limits"], stored["rate_limit_caps"] = limits, caps
    return await _save(session, client, stored, changes)


def _changes(patch: ClientPatch) -> dict[str, Any]:
    # The name and the settings given (under `settings` or in the older top-level form).
    changes = patch.changes().model_dump(exclude_unset=True, exclude_none=True, mode="json")
    if patch.name is not None:
        changes["name"] = patch.name
    return changes


def _over_cap(name: str, value: int, cap: int, granted: dict[str, int], settings: Settings) -> str:
    if name in granted:
        return (
            f"rate_limits.{name}: {value} is over this client's cap of {cap}, granted by the "
            "operator; only the operator (the admin key) can lift it further"
        )
    variable = RATE_LIMIT_CAPS[DEFAULT_SETTING[name]]
    return (
        f"rate_limits.{name}: {value} is over this deployment's cap of {cap} ({variable}); "
        "only the operator (the admin key) can lift a client past it"
    )


async def _save(
    session: AsyncSession, client: Client, stored: dict[str, Any], changes: dict[str, Any]
) -> Client:
    if "name" in changes:
        client.name = changes.pop("name")
    if "room_inactivity_seconds" in changes:
        merged = dict(stored.get("room_inactivity_seconds", {}))
        merged.update(changes.pop("room_inactivity_seconds"))
        stored["room_inactivity_seconds"] = merged
    # Each value was bounded by ClientPatch; an old invalid one left in place falls back
    # to its default in effective_settings.
    stored.update(changes)
    client.settings = stored
    session.add(client)
    await session.commit()
    return client


async def rotate_master_key(
    session: AsyncSession, client_id: str, grace_seconds: int, rounds: int
) -> tuple[str, datetime, list[str]]:
    """Issue a new master key; the old ones die after the grace. Returns their ids too."""
    # Hashed before the first query, so no write transaction is open while bcrypt runs.
    key = await keys.new_hashed_key(rounds)
    await get_client(session, client_id)
    presented, expire_at, old_ids = await keys.rotate_master(session, client_id, grace_seconds, key)
    await session.commit()
    return presented, expire_at, old_ids


async def inactivity_overrides(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Per client, the room types whose inactivity threshold it overrides.

    An override that is not a whole number of seconds within the bounds is logged and left
    out (the client's rooms of that type follow the default), so one tenant's bad row
    cannot stop the sweep for everyone.
    """
    out: dict[str, dict[str, int]] = {}
    for client_id, stored in await repository.all_settings(session):
        by_type = stored.get("room_inactivity_seconds")
        if not isinstance(by_type, dict) or not by_type:
            continue
        valid: dict[str, int] = {}
        for room_type, seconds in by_type.items():
            if (
                isinstance(seconds, int)
                and not isinstance(seconds, bool)
                and MIN_ROOM_INACTIVITY_SECONDS <= seconds <= MAX_ROOM_INACTIVITY_SECONDS
            ):
                valid[str(room_type)] = seconds
            else:
                log.error(
                    "client %s: ignoring invalid room_inactivity_seconds[%s]",
                    client_id,
                    room_type,
                    extra={"client_id": client_id, "room_type": str(room_type)},
                )
        if valid:
            out[client_id] = valid
    return out
