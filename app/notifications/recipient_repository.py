"""A send's recipient users and their stored preferences, read together.

Every send looks its recipient users up by id or external id and then reads their
preference documents; on PostgreSQL both come from one statement (a LEFT JOIN), a round
trip fewer on the hottest path (P1 profiled each statement at ~6% of a send's CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.native_sql import session_query
from app.users.repository import UserContact

LOOKUP_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class UsersWithPreferences:
    """The users found, and the preference documents of those that stored one."""

    users: list[UserContact]
    preferences: dict[str, dict[str, Any]]


async def users_with_preferences(
    session: AsyncSession, client_id: str, *, user_ids: Sequence[str], external_ids: Sequence[str]
) -> UsersWithPreferences:
    """The client's users among `user_ids` or `external_ids`, with their preferences."""
    ids, externals = list(dict.fromkeys(user_ids)), list(dict.fromkeys(external_ids))
    rows: list[Sequence[Any]] = []
    if session.get_bind().dialect.name == "postgresql":
        # Driver SQL with arrays (no Core compilation on the send's hot path).
        rows = list(await session_query(session)(_PG, [client_id, ids, externals]))
    else:
        # Driver SQL here too: one hop to aiosqlite's thread per chunk, not four.
        query, seen = session_query(session), set()
        for column, values in (("id", ids), ("external_id", externals)):
            for start in range(0, len(values), LOOKUP_CHUNK):
                chunk = values[start : start + LOOKUP_CHUNK]
                sql = _SQLITE.format(column=column, marks=", ".join("?" for _ in chunk))
                for row in await query(sql, [client_id, *chunk]):
                    if row[0] not in seen:  # named by id and by external id: once
                        seen.add(row[0])
                        rows.append(row)
    users = [UserContact(row[0], row[1], row[2], row[3]) for row in rows]
    docs = {row[0]: dict(_json(row[4])) for row in rows if row[4] is not None}
    return UsersWithPreferences(users, docs)


_PG = (
    "SELECT u.id, u.external_id, u.email, u.phone, p.preferences FROM users u "
    "LEFT JOIN notification_preferences p ON p.client_id = u.client_id AND p.user_id = u.id "
    "WHERE u.client_id = $1 AND (u.id = ANY($2::varchar[]) OR u.external_id = ANY($3::varchar[]))"
)


_SQLITE = (
    "SELECT u.id, u.external_id, u.email, u.phone, p.preferences FROM users u "
    "LEFT JOIN notification_preferences p ON p.client_id = u.client_id AND p.user_id = u.id "
    "WHERE u.client_id = ? AND u.{column} IN ({marks})"
)


def _json(value: Any) -> Any:
    # Driver SQL skips SQLAlchemy's JSON result processing: asyncpg answers text.
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value
