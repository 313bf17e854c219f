"""A per-process cache of each user's rooms as a connect reads them, dropped through the
broadcast whenever membership changes anywhere.

A connect reads the user's rooms (and whether each hears the user's presence) to subscribe
the new connection; a reconnecting user (churn, a flaky network, a page reload) would read
the same rows again. Whoever changes membership publishes `rooms_changed` after its commit,
and every process drops the entries it names:

- a user's entry when the user joins or leaves a room (or is deleted);
- every entry holding a room whose membership changed: its size decides whether it hears
  presence, for all its members;
- every entry of the tenant when the change is too wide to name (a tenant deleted).

A read that raced an invalidation is not stored (`generation`), so a drop can never be
undone by an older read. Published before the `room.member_joined` on the user's target,
so a process has dropped the entry by the time it hears that event; an entry lives at most
TTL_SECONDS besides, bounding what a lost message (a broker reconnect) can leave stale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import orjson

from app.core.broadcast import Broadcast
from app.core.clock import monotonic

log = logging.getLogger("chatapi.realtime")

CHANNEL = "rt:rooms-changed"
TTL_SECONDS = 60.0
MAX_USERS = 50_000

UserRooms = list[tuple[str, bool]]  # (room id, hears the user's presence)


class RoomsOfUserCache:
    """Users' rooms by (tenant, user), with a reverse index by room for invalidation."""

    def __init__(self, broadcast: Broadcast, *, ttl: float = TTL_SECONDS) -> None:
        self._broadcast = broadcast
        self._ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, UserRooms]] = {}
        self._by_room: dict[tuple[str, str], set[str]] = {}
        self.generation = 0  # bumped by every invalidation
        self._listening = False  # a cache that hears no invalidation keeps nothing

    async def start(self) -> None:
        """Hear invalidations from every process."""
        await self._broadcast.subscribe(CHANNEL, self._on_message)
        self._listening = True

    async def stop(self) -> None:
        """Stop hearing them (and forget everything: nothing would drop it now)."""
        self._listening = False
        self.clear()
        await self._broadcast.unsubscribe(CHANNEL, self._on_message)

    def get(self, client_id: str, user_id: str) -> UserRooms | None:
        """The cached rooms of a user, or None (never read, dropped or expired)."""
        entry = self._entries.get((client_id, user_id))
        if entry is None:
            return None
        stored_at, rooms = entry
        if monotonic() - stored_at > self._ttl:
            self._forget(client_id, user_id)
            return None
        return rooms

    def put(self, client_id: str, user_id: str, rooms: UserRooms, generation: int) -> None:
        """Store what was read when `generation` was current; nothing if an invalidation
        arrived since (the read may predate the change it announced)."""
        if generation != self.generation or not self._listening:
            return
        if len(self._entries) >= MAX_USERS:
            self.clear()
        self._forget(client_id, user_id)
        self._entries[(client_id, user_id)] = (monotonic(), rooms)
        for room_id, _ in rooms:
            self._by_room.setdefault((client_id, room_id), set()).add(user_id)

    def drop(
        self,
        client_id: str,
        *,
        user_ids: Iterable[str] = (),
        room_ids: Iterable[str] = (),
        everyone: bool = False,
    ) -> None:
        """Forget the named users' entries and every entry holding a named room."""
        self.generation += 1
        if everyone:
            for key in [k for k in self._entries if k[0] == client_id]:
                self._forget(*key)
            return
        users = set(user_ids)
        for room_id in room_ids:
            users |= self._by_room.get((client_id, room_id), set())
        for user_id in users:
            self._forget(client_id, user_id)

    def clear(self) -> None:
        """Forget everything."""
        self.generation += 1
        self._entries.clear()
        self._by_room.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, client_id: str, user_id: str) -> None:
        entry = self._entries.pop((client_id, user_id), None)
        if entry is None:
            return
        for room_id, _ in entry[1]:
            key = (client_id, room_id)
            users = self._by_room.get(key)
            if users is not None:
                users.discard(user_id)
                if not users:
                    del self._by_room[key]

    async def _on_message(self, raw: bytes) -> None:
        body = orjson.loads(raw)
        self.drop(body["c"], user_ids=body["u"], room_ids=body["r"], everyone=body["a"])


async def rooms_changed(
    broadcast: Broadcast,
    client_id: str,
    *,
    user_ids: Sequence[str] = (),
    room_ids: Sequence[str] = (),
    everyone: bool = False,
) -> None:
    """Tell every process's cache that these users' rooms or these rooms' members changed
    (after the commit); a failure is logged, the entries then expire within TTL_SECONDS."""
    body = {"c": client_id, "u": list(user_ids), "r": list(room_ids), "a": everyone}
    try:
        await broadcast.publish(CHANNEL, orjson.dumps(body))
    except Exception:
        log.exception("could not announce a membership change to the rooms cache")
