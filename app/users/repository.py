"""Queries on users, always scoped by client id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.native_sql import session_query
from app.users.models import User

# Values per IN list: far under both drivers' parameter limits.
LOOKUP_CHUNK = 1000


async def get(
    session: AsyncSession, client_id: str, user_id: str, *, for_update: bool = False
) -> User | None:
    """One user of the client."""
    query = select(User).where(col(User.client_id) == client_id, col(User.id) == user_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_external_id(
    session: AsyncSession, client_id: str, external_id: str, *, for_update: bool = False
) -> User | None:
    """The client's user with this external id."""
    query = select(User).where(
        col(User.client_id) == client_id,
        col(User.external_id) == external_id,
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def existing_ids(session: AsyncSession, client_id: str, user_ids: Sequence[str]) -> set[str]:
    """Which of `user_ids` are users of the client."""
    if not user_ids:
        return set()
    result = await session.execute(
        select(col(User.id)).where(col(User.client_id) == client_id, col(User.id).in_(user_ids))
    )
    return set(result.scalars().all())


@dataclass(frozen=True, slots=True)
class UserContact:
    """What a send needs of a user: who it is and where mail and SMS go."""

    id: str
    external_id: str
    email: str | None
    phone: str | None = None


async def by_keys(
    session: AsyncSession, client_id: str, *, user_ids: Sequence[str], external_ids: Sequence[str]
) -> list[UserContact]:
    """The client's users among `user_ids` or `external_ids`, in bounded IN lists (four
    columns, no ORM objects: this is on every notification send)."""
    found: list[UserContact] = []
    if session.get_bind().dialect.name == "postgresql":
        # Driver SQL with arrays: one statement for both kinds of key, and no Core
        # compilation nor ORM result machinery on the send's hot path.
        rows = await session_query(session)(
            _BY_KEYS_PG,
            [client_id, list(dict.fromkeys(user_ids)), list(dict.fromkeys(external_ids))],
        )
        return [UserContact(*row) for row in rows]
    columns = (col(User.id), col(User.external_id), col(User.email), col(User.phone))
    for column, values in ((col(User.id), user_ids), (col(User.external_id), external_ids)):
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), LOOKUP_CHUNK):
            query = select(*columns).where(
                col(User.client_id) == client_id, column.in_(unique[start : start + LOOKUP_CHUNK])
            )
            found.extend(UserContact(*row) for row in (await session.execute(query)).all())
    return found


_BY_KEYS_PG = (
    "SELECT id, external_id, email, phone FROM users WHERE client_id = $1 "
    "AND (id = ANY($2::varchar[]) OR external_id = ANY($3::varchar[]))"
)


async def list_page(
    session: AsyncSession, client_id: str, limit: int, after: str | None
) -> Sequence[User]:
    """`limit + 1` users of the client after the cursor, by id."""
    query = select(User).where(col(User.client_id) == client_id)
    if after:
        query = query.where(col(User.id) > after)
    result = await session.execute(query.order_by(col(User.id)).limit(limit + 1))
    return result.scalars().all()


def add(session: AsyncSession, user: User) -> None:
    """Stage a new user."""
    session.add(user)


async def remove(session: AsyncSession, client_id: str, user_id: str) -> bool:
    """Delete the user; False when the client has no such user."""
    result = await session.execute(
        delete(User)
        .where(col(User.client_id) == client_id, col(User.id) == user_id)
        .returning(col(User.id))
    )
    return result.scalar_one_or_none() is not None


async def display_names(
    session: AsyncSession, client_id: str, user_ids: Sequence[str]
) -> dict[str, str]:
    """The client's users among `user_ids`: id → display name (external id when unnamed)."""
    names: dict[str, str] = {}
    unique = list(dict.fromkeys(user_ids))
    columns = (col(User.id), col(User.display_name), col(User.external_id))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        query = select(*columns).where(
            col(User.client_id) == client_id, col(User.id).in_(unique[start : start + LOOKUP_CHUNK])
        )
        for uid, name, external_id in (await session.execute(query)).all():
            names[str(uid)] = str(name or external_id)
    return names
