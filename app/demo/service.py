"""The browser demo's login: a demo client, its shared rooms, and a user key per visitor.

Everything goes through the ordinary services (tenants, users, rooms, login), as if the
demo were a tenant's own backend: the browser only ever receives a scoped user key, never
the demo client's master key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from ulid import ULID

from app.auth import login as login_service
from app.auth.authenticator import Authenticator
from app.auth.principal import KeyKind, Principal, Scope
from app.core.errors import Conflict, NotFound
from app.demo.schemas import DemoRoom
from app.realtime.bus import EventBus
from app.rooms import service as rooms
from app.rooms.schemas import RoomCreate
from app.tenants import service as tenants
from app.tenants.schemas import RoomType
from app.users import service as users
from app.users.schemas import UserUpsert

DEMO_CLIENT_NAME = "Demo"
#: The shared `group` rooms every demo user joins: (key, display name).
DEMO_ROOMS: tuple[tuple[str, str], ...] = (("lobby", "lobby"), ("random", "random"))
#: What the page needs: read rooms, read and write messages, its inbox. No `rooms:write`:
#: a visitor cannot rename, delete or fill the shared rooms.
DEMO_SCOPES = [
    Scope.rooms_read.value,
    Scope.messages_read.value,
    Scope.messages_write.value,
    Scope.notifications_read.value,
]
#: A demo key dies after a day; the page simply logs in again.
DEMO_KEY_TTL_SECONDS = 86_400
EXTERNAL_ID_PREFIX = "demo:"


def external_id_for(display_name: str) -> str:
    """The demo user's external id: one user per name, case-insensitively."""
    return EXTERNAL_ID_PREFIX + display_name.casefold()


def demo_room_id(client_id: str, key: str) -> str:
    """A fixed room id per (client, room key): concurrent first logins, on any process,
    create the room once (the second insert hits the primary key) and find it afterwards."""
    digest = hashlib.sha256(f"chatapi-demo:{client_id}:{key}".encode()).digest()
    return str(ULID.from_bytes(digest[:16]))


async def demo_client_id(session: AsyncSession, slug: str, rounds: int) -> str:
    """The demo client's id: the client with `slug`, created (its master key discarded)
    when absent. An operator who wants to send notifications creates it first."""
    client = await tenants.find_client_by_slug(session, slug)
    if client is None:
        try:
            client, _ = await tenants.create_client(session, DEMO_CLIENT_NAME, slug, rounds)
        except (Conflict, IntegrityError):  # created concurrently by another request
            await session.rollback()
            client = await tenants.find_client_by_slug(session, slug)
            if client is None:
                raise
    return client.id


async def join_demo_rooms(
    session: AsyncSession, bus: EventBus, client_id: str, user_id: str, *, member_ids_max: int
) -> list[DemoRoom]:
    """Put the user in every demo room, creating a room the first time it is needed."""
    master = Principal(kind=KeyKind.master, key_id="demo", client_id=client_id)
    joined = []
    for key, name in DEMO_ROOMS:
        room_id = demo_room_id(client_id, key)
        try:
            await rooms.add_members(
                session, bus, master, room_id, [user_id], member_ids_max=member_ids_max
            )
        except NotFound:
            await session.rollback()
            body = RoomCreate(name=name, type=RoomType.group, member_ids=[user_id])
            try:
                await rooms.create_room(
                    session, bus, master, body, member_ids_max=member_ids_max, room_id=room_id
                )
            except IntegrityError:  # another login created it first
                await session.rollback()
                await rooms.add_members(
                    session, bus, master, room_id, [user_id], member_ids_max=member_ids_max
                )
        joined.append(DemoRoom(id=room_id, name=name))
    return joined


async def demo_login(
    session: AsyncSession,
    bus: EventBus,
    authenticator: Authenticator,
    *,
    client_id: str,
    display_name: str,
    rounds: int,
    member_ids_max: int,
) -> tuple[str, str, list[DemoRoom], datetime | None]:
    """Upsert the user named `display_name`, join the demo rooms, then log in (which
    rotates: the same name in another tab is signed out). Returns (key, user id, rooms,
    expiry). Rooms are joined first, so the key's first socket is subscribed to them."""
    user, _ = await users.upsert_user(
        session,
        client_id,
        UserUpsert(external_id=external_id_for(display_name), display_name=display_name),
    )
    user_id = user.id
    joined = await join_demo_rooms(session, bus, client_id, user_id, member_ids_max=member_ids_max)
    presented, _, scopes, expires_at, revoked = await login_service.login(
        session,
        client_id,
        user_id=user_id,
        external_id=None,
        scopes=DEMO_SCOPES,
        ttl_seconds=DEMO_KEY_TTL_SECONDS,
        rounds=rounds,
    )
    # As POST /auth/login does: the page's first call need not hash the secret again.
    await authenticator.logged_in(
        presented,
        client_id=client_id,
        user_id=user_id,
        scopes=scopes,
        expires_at=expires_at,
        revoked=revoked,
    )
    return presented, user_id, joined, expires_at


async def display_names(
    session: AsyncSession, client_id: str, user_ids: list[str]
) -> dict[str, str]:
    """Display names of the client's users among `user_ids` (external id when unnamed)."""
    return await users.display_names(session, client_id, user_ids)
