"""Login always rotates: a new user key, and every earlier key of that user *on that device*
revoked (plus the least recently used devices past the per-user limit)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as keys
from app.auth.principal import ALL_SCOPES, KeyKind
from app.core.clock import utcnow
from app.users import service as users
from app.users.models import User

# The device of a login that names none: one device per user, as before devices existed.
DEFAULT_DEVICE = "default"


async def login(
    session: AsyncSession,
    client_id: str,
    *,
    user_id: str | None,
    external_id: str | None,
    scopes: list[str] | None,
    ttl_seconds: int | None,
    rounds: int,
    device_id: str = DEFAULT_DEVICE,
    max_devices: int = 10,
) -> tuple[str, User, list[str], datetime | None, list[str]]:
    """Issue the device's only live key. Returns (key, user, scopes, expiry, revoked key ids)."""
    # Hashed before the first query: no transaction holds a lock while bcrypt runs (an
    # unknown user wastes one hash, which only a master key can cause).
    key = await keys.new_hashed_key(rounds)
    # Locking the user row serialises concurrent logins of one user, so exactly one key
    # per device survives (SQLite's IMMEDIATE transactions serialise them anyway).
    user = await users.find_user(
        session, client_id, user_id=user_id, external_id=external_id, lock=True
    )
    revoked = await keys.rotate_device(session, client_id, user.id, device_id, max_devices)
    granted = sorted(scopes) if scopes else sorted(ALL_SCOPES)
    expires_at = utcnow() + timedelta(seconds=ttl_seconds) if ttl_seconds else None
    keys.issue_key(
        session,
        key,
        client_id=client_id,
        kind=KeyKind.user,
        user_id=user.id,
        scopes=granted,
        expires_at=expires_at,
        device_id=device_id,
    )
    await session.commit()
    return key.presented, user, granted, expires_at, revoked


async def logout(session: AsyncSession, client_id: str, key_id: str) -> None:
    """Revoke the presented user key."""
    await keys.revoke_presented(session, client_id, key_id)
    await session.commit()
