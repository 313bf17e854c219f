"""Connect tokens: short-lived, single-use, socket-only stand-ins for a key.

A backend mints one (`POST /auth/connect-token`) and hands it to a page, which opens one
socket with it; the page never holds a long-lived key. The token is 256 random bits, stored
only as its SHA-256 (enough for a secret of that entropy; no bcrypt on the connect path).
The socket it opens is authenticated as the minting key (same kind, user and scopes, same
key id), so revoking that key closes the socket like any other of that key.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import connect_token_repository as repository
from app.auth.models import ConnectToken
from app.auth.principal import ALL_SCOPES, KeyKind, Principal
from app.core.clock import utcnow
from app.core.errors import Forbidden, Unauthorized
from app.users import service as users

TOKEN_PREFIX = "ct_"
# Expired tokens are deleted when the client mints again, this long after their expiry.
PURGE_AFTER = timedelta(hours=1)


def is_connect_token(presented: str) -> bool:
    """Whether `presented` has the form of a connect token (not an API key)."""
    return presented.startswith(TOKEN_PREFIX)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def mint(
    session: AsyncSession, principal: Principal, user_id: str | None, ttl_seconds: int
) -> tuple[str, datetime]:
    """A new token for the caller's user (user key) or `user_id` (master key); commits.
    Returns (token, expires_at)."""
    kind = KeyKind.user
    scopes = sorted(principal.scopes)
    if principal.is_user:
        if user_id is not None and user_id != principal.user_id:
            raise Forbidden("A user key mints connect tokens for its own user only")
        user_id = principal.user_id
    elif user_id is not None:
        await users.get_user(session, principal.client_id, user_id)
        scopes = sorted(ALL_SCOPES)
    else:
        # A master key without a user: a master socket (joins rooms, operational events).
        kind = KeyKind.master
    now = utcnow()
    expires_at = now + timedelta(seconds=ttl_seconds)
    # A socket must not outlive the key it stands for.
    if principal.expires_at is not None:
        expires_at = min(expires_at, principal.expires_at)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await repository.purge_expired(session, principal.client_id, now - PURGE_AFTER)
    repository.add(
        session,
        ConnectToken(
            token_hash=_hash(token),
            client_id=principal.client_id,
            kind=kind.value,
            user_id=user_id,
            key_id=principal.key_id,
            scopes=scopes,
            created_at=now,
            expires_at=expires_at,
        ),
    )
    await session.commit()
    return token, expires_at


async def redeem(session: AsyncSession, token: str) -> Principal:
    """Use the token up (commits) and return the principal its socket runs as (its key id is
    the minting key's); Unauthorized when it is unknown, used or expired."""
    if not is_connect_token(token) or len(token) > 100:
        raise Unauthorized("Malformed connect token")
    row = await repository.consume(session, _hash(token), utcnow())
    await session.commit()
    if row is None:
        raise Unauthorized("The connect token is unknown, already used or expired")
    kind = KeyKind(row.kind)
    principal = Principal(
        kind=kind,
        key_id=row.key_id,
        client_id=row.client_id,
        user_id=row.user_id,
        scopes=ALL_SCOPES if kind is KeyKind.master else frozenset(row.scopes),
    )
    return principal
