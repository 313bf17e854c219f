"""Users: upsert by external id, read, change, delete (which revokes their keys)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as keys
from app.core.clock import utcnow
from app.core.errors import NotFound
from app.core.ids import new_id
from app.users import repository
from app.users.models import User
from app.users.repository import UserContact
from app.users.schemas import UserPatch, UserUpsert


async def upsert_user(session: AsyncSession, client_id: str, body: UserUpsert) -> tuple[User, bool]:
    """Create the user or update the one with the same external id; True when created."""
    existing = await repository.get_by_external_id(session, client_id, body.external_id)
    if existing is None:
        user = User(
            id=new_id(),
            client_id=client_id,
            external_id=body.external_id,
            display_name=body.display_name,
            email=body.email,
            phone=body.phone,
            metadata_=body.metadata or {},
        )
        repository.add(session, user)
        try:
            await session.commit()
            return user, True
        except IntegrityError:
            # A concurrent request created it first: fall through and update that one.
            await session.rollback()
            existing = await repository.get_by_external_id(session, client_id, body.external_id)
            if existing is None:
                raise
    _apply(existing, body.model_dump(exclude_unset=True, exclude={"external_id"}))
    await session.commit()
    return existing, False


def _apply(user: User, changes: dict[str, Any]) -> None:
    if "display_name" in changes:
        user.display_name = changes["display_name"]
    if "email" in changes:
        user.email = changes["email"]
    if "phone" in changes:
        user.phone = changes["phone"]
    if "metadata" in changes:
        user.metadata_ = changes["metadata"] or {}
    user.updated_at = utcnow()


async def get_user(session: AsyncSession, client_id: str, user_id: str) -> User:
    """One user, or 404."""
    user = await repository.get(session, client_id, user_id)
    if user is None:
        raise NotFound("No such user")
    return user


async def find_user(
    session: AsyncSession,
    client_id: str,
    *,
    user_id: str | None = None,
    external_id: str | None = None,
    lock: bool = False,
) -> User:
    """A user by id or by external id (locked for update when asked), or 404."""
    if user_id is not None:
        user = await repository.get(session, client_id, user_id, for_update=lock)
    elif external_id is not None:
        user = await repository.get_by_external_id(session, client_id, external_id, for_update=lock)
    else:
        user = None
    if user is None:
        raise NotFound("No such user")
    return user


async def missing_users(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> list[str]:
    """The ids in `user_ids` that are not users of the client."""
    found = await repository.existing_ids(session, client_id, user_ids)
    return [u for u in user_ids if u not in found]


async def users_by_keys(
    session: AsyncSession, client_id: str, *, user_ids: Sequence[str], external_ids: Sequence[str]
) -> tuple[dict[str, UserContact], dict[str, UserContact]]:
    """The client's users found among `user_ids` and `external_ids` (bulk, for fan-outs):
    (by id, by external id); absent keys are unknown."""
    users = await repository.by_keys(
        session, client_id, user_ids=user_ids, external_ids=external_ids
    )
    return {u.id: u for u in users}, {u.external_id: u for u in users}


async def list_users(
    session: AsyncSession, client_id: str, limit: int, after: str | None
) -> Sequence[User]:
    """`limit + 1` users after the cursor."""
    return await repository.list_page(session, client_id, limit, after)


async def update_user(
    session: AsyncSession, client_id: str, user_id: str, patch: UserPatch
) -> User:
    """Change a user's profile."""
    user = await get_user(session, client_id, user_id)
    _apply(user, patch.model_dump(exclude_unset=True))
    await session.commit()
    return user


async def delete_user(session: AsyncSession, client_id: str, user_id: str) -> list[str]:
    """Delete the user and revoke its keys; return the revoked key ids to announce."""
    revoked = await keys.revoke_user_keys(session, client_id, user_id)
    if not await repository.remove(session, client_id, user_id):
        raise NotFound("No such user")
    await session.commit()
    return revoked


async def display_names(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> dict[str, str]:
    """The client's users among `user_ids`: id → display name (external id when unnamed)."""
    return await repository.display_names(session, client_id, user_ids)
