"""The process's real-time hub: local connections, their bus subscriptions, presence,
revocation, and the connect hook for the offline inbox.

Each process listens on the bus only for targets (rooms, users) it has local connections
for, and delivers what it hears to those connections — the same path for both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from app.auth import scopes
from app.auth.authenticator import Authenticator
from app.core.clock import utcnow
from app.core.db import Database
from app.observability.metrics import LIVE_CONNECTIONS
from app.realtime import events
from app.realtime.bus import Event, EventBus
from app.realtime.connection import CLOSE_REVOKED, Connection, Frame
from app.realtime.presence import Presence
from app.realtime.room_cache import RoomsOfUserCache
from app.rooms import service as rooms

log = logging.getLogger("chatapi.realtime")

ConnectHook = Callable[[Connection], Awaitable[None]]
HOUSEKEEPING_SECONDS = 5.0
KEY_RECHECK_SECONDS = 30.0


class Hub:
    """Registry of this process's connections and their subscriptions."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        presence: Presence,
        authenticator: Authenticator,
        *,
        presence_max_members: int = 100,
        key_recheck_seconds: float = KEY_RECHECK_SECONDS,
    ) -> None:
        self._presence_max_members = presence_max_members
        self._key_recheck_seconds = key_recheck_seconds
        self._authenticator = authenticator
        self._db = db
        self._bus = bus
        self._presence = presence
        # A reconnecting user's rooms without a read (dropped through the broadcast).
        self.rooms_cache = RoomsOfUserCache(bus.broadcast)
        self._listeners: dict[tuple[str, str], set[Connection]] = defaultdict(set)
        self._connections: dict[str, Connection] = {}
        self._connect_hooks: list[ConnectHook] = []
        # Bus subscriptions in flight, so a second local listener waits for the first.
        self._pending: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self._housekeeper: asyncio.Task[None] | None = None
        self._rechecker: asyncio.Task[None] | None = None
        authenticator.on_revoked(self._close_revoked)
        # A changed key (a rotation's grace gives the old master an expiry): re-read it,
        # so its open sockets close when the grace ends.
        authenticator.on_changed(self.recheck_keys)

    async def start(self) -> None:
        """Start refreshing presence and closing expired keys' connections."""
        await self.rooms_cache.start()
        self._housekeeper = asyncio.create_task(self._housekeeping(), name="realtime-housekeeping")
        self._rechecker = asyncio.create_task(self._rechecking(), name="realtime-key-recheck")

    async def stop(self) -> None:
        """Close every connection and stop."""
        for task in (self._housekeeper, self._rechecker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for conn in list(self._connections.values()):
            await conn.close(1001, "server shutting down")
        await self.rooms_cache.stop()

    def on_connect(self, hook: ConnectHook) -> None:
        """Run `hook(connection)` after a user connection is set up (the offline inbox)."""
        self._connect_hooks.append(hook)

    @property
    def connection_count(self) -> int:
        """Live connections in this process."""
        return len(self._connections)

    def client_connection_count(self, client_id: str) -> int:
        """Live connections of one client in this process."""
        return sum(1 for c in self._connections.values() if c.client_id == client_id)

    async def register(self, conn: Connection) -> None:
        """Subscribe a new connection to its user and rooms; announce presence.

        Runs before the transport's handshake is answered and before the connection's
        writer starts (the gateway starts it), so a client whose connect call returned
        misses nothing published afterwards, and `connected` is its first frame. On any
        failure the connection is forgotten again and the error raised to the gateway.
        """
        self._connections[conn.id] = conn
        LIVE_CONNECTIONS.labels(conn.transport).inc()
        try:
            presence_rooms = await self._subscribe_all(conn)
            if conn.user_id is None:
                return
            first = await self._presence.connected(conn.client_id, conn.user_id)
            conn.counted = True  # from here on, unregister must count it out again
            if first:
                # The rooms that hear presence and that the connection still follows (a
                # leave may have landed meanwhile).
                told = [r for r in presence_rooms if events.room_target(r) in conn.targets]
                await self._announce(conn, online=True, room_ids=told)
        except BaseException:
            await self.unregister(conn)
            raise
        for hook in self._connect_hooks:
            try:
                await hook(conn)
            except Exception:
                log.exception("connect hook failed")

    async def _subscribe_all(self, conn: Connection) -> list[str]:
        """Subscribe `conn` to what its key follows and set its `connected` greeting;
        answers the user's rooms that hear its presence."""
        if conn.user_id is None:
            if conn.principal.is_master:
                # Operational events (delivery.exhausted, endpoint.disabled) of the tenant.
                await self.subscribe(conn, events.client_target())
            conn.greet(events.CONNECTED, _connected(conn, []))
            return []
        # The user target first, then the rooms: a room joined after the read below is
        # announced on the user target, which is already heard (and subscribes the room).
        await self.subscribe(conn, events.user_target(conn.user_id))
        # A key that may hear nothing in rooms does not need them read at all.
        found = await self._rooms_of(conn) if scopes.follows_rooms(conn.principal) else []
        room_ids = [room_id for room_id, _ in found]
        for room_id in room_ids:
            await self.subscribe(conn, events.room_target(room_id))
        # What the connection listens to now (a join or leave may have landed meanwhile).
        live = [r for r in room_ids if events.room_target(r) in conn.targets]
        live += sorted(
            t.removeprefix("room:")
            for t in conn.targets
            if t.startswith("room:") and t.removeprefix("room:") not in room_ids
        )
        conn.greet(events.CONNECTED, _connected(conn, live))
        return [room_id for room_id, hears_presence in found if hears_presence]

    async def _rooms_of(self, conn: Connection) -> list[tuple[str, bool]]:
        """The user's rooms, each with whether it hears the user's presence: cached, or one
        statement outside any transaction (the connect path's only read of rooms)."""
        assert conn.user_id is not None
        cached = self.rooms_cache.get(conn.client_id, conn.user_id)
        if cached is not None:
            return cached
        generation = self.rooms_cache.generation
        async with self._db.read_connection() as db:
            found = await rooms.rooms_of_user(
                db, conn.client_id, conn.user_id, self._presence_max_members
            )
        self.rooms_cache.put(conn.client_id, conn.user_id, found, generation)
        return found

    @property
    def listener_count(self) -> int:
        """(tenant, target) pairs this process listens to for its connections."""
        return len(self._listeners)

    async def unregister(self, conn: Connection) -> None:
        """Forget a connection (after its transport closed, or a failed registration)."""
        if self._connections.pop(conn.id, None) is None:
            return
        LIVE_CONNECTIONS.labels(conn.transport).dec()
        await conn.stop_writer()
        in_rooms = _in_rooms(conn)
        for target in list(conn.targets):
            try:
                await self.unsubscribe(conn, target)
            except Exception:
                log.exception("unsubscribe failed", extra={"connection": conn.id})
        if conn.user_id is None or not conn.counted:
            return
        conn.counted = False
        try:
            if await self._presence.disconnected(conn.client_id, conn.user_id) and in_rooms:
                told = [room_id for room_id, hears in await self._rooms_of(conn) if hears]
                await self._announce(conn, online=False, room_ids=told)
        except Exception:
            log.exception("presence update failed on disconnect", extra={"connection": conn.id})

    @staticmethod
    def may_follow(conn: Connection, target: str) -> bool:
        """Whether `conn`'s key may be subscribed to `target`: its own user always, rooms
        only with rooms:read or messages:read (nothing else is delivered on a room)."""
        return not target.startswith("room:") or scopes.follows_rooms(conn.principal)

    async def subscribe(self, conn: Connection, target: str) -> None:
        """Deliver `target`'s events to `conn` (listening on the bus on first local use);
        a target the key's scopes do not allow is skipped (`may_follow`).

        Returns once the bus listens: a connection sharing a target whose first
        subscription is still in flight waits for it rather than assume it."""
        if target in conn.targets or not self.may_follow(conn, target):
            return
        conn.targets.add(target)
        key = (conn.client_id, target)
        first = key not in self._listeners
        self._listeners[key].add(conn)
        if not first:
            pending = self._pending.get(key)
            if pending is not None and not await asyncio.shield(pending):
                conn.targets.discard(target)
                raise RuntimeError(f"listening on {target} failed")
            return
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            await self._bus.listen(conn.client_id, target, self._deliver)
        except BaseException:
            conn.targets.discard(target)
            for other in self._listeners.pop(key, set()):
                other.targets.discard(target)
            done.set_result(False)
            raise
        else:
            done.set_result(True)
        finally:
            self._pending.pop(key, None)

    async def unsubscribe(self, conn: Connection, target: str) -> None:
        """Stop delivering `target` to `conn`."""
        conn.targets.discard(target)
        key = (conn.client_id, target)
        listeners = self._listeners.get(key)
        if listeners is None:
            return
        listeners.discard(conn)
        if not listeners:
            del self._listeners[key]
            await self._bus.unlisten(conn.client_id, target, self._deliver)

    async def _deliver(self, event: Event) -> None:
        frame = Frame(event.event, event.data)
        # The scope this event needs, once per event; per connection it is one set lookup.
        needed = scopes.delivery_scope(event.event)
        for conn in list(self._listeners.get((event.client_id, event.target), ())):
            if event.exclude_key is not None and event.exclude_key == conn.id:
                continue
            if event.target.startswith("user:") and event.event in (
                events.ROOM_MEMBER_JOINED,
                events.ROOM_MEMBER_LEFT,
            ):
                await self._own_membership(conn, event, needed)
                continue
            if scopes.may_receive(conn.principal, needed):
                conn.enqueue_frame(frame)

    async def _own_membership(self, conn: Connection, event: Event, needed: str | None) -> None:
        # The user's own copy of a membership change: (un)subscribe its connections. The
        # room's copy reached them only if they were already subscribed (i.e. on leave).
        # It drives subscriptions whatever the scopes; the client sees it only with
        # the scope room events need.
        target = events.room_target(str(event.data["room_id"]))
        if event.event == events.ROOM_MEMBER_JOINED:
            if target not in conn.targets:
                await self.subscribe(conn, target)
                if scopes.may_receive(conn.principal, needed):
                    conn.enqueue(event.event, event.data)
        else:
            await self.unsubscribe(conn, target)

    async def _announce(self, conn: Connection, *, online: bool, room_ids: list[str]) -> None:
        # Presence goes only to rooms where it means something (`room_ids`): not broadcast
        # channels and not rooms past presence_max_members, where every (dis)connect of N
        # members would cost N² events.
        assert conn.user_id is not None
        for room_id in room_ids:
            await self._bus.publish(
                conn.client_id,
                events.room_target(room_id),
                events.PRESENCE,
                {"room_id": room_id, "user_id": conn.user_id, "online": online},
            )

    async def _close_revoked(self, key_ids: list[str]) -> None:
        revoked = set(key_ids)
        for conn in list(self._connections.values()):
            if conn.principal.key_id in revoked:
                await conn.close(CLOSE_REVOKED, "the API key was revoked")

    async def close_expired(self) -> None:
        """Close connections whose key's known expiry (installed clock) has passed."""
        now = utcnow()
        for conn in list(self._connections.values()):
            expires_at = conn.principal.expires_at
            if expires_at is not None and expires_at <= now:
                await conn.close(CLOSE_REVOKED, "the API key has expired")

    async def recheck_keys(self, key_ids: list[str] | None = None) -> None:
        """Re-read the keys of this process's open connections (all, or those of `key_ids`):
        close those revoked or deleted, let the others learn their current expiry, then
        close the expired. Indexed reads in batches, no bcrypt: a lost revocation or
        change message cannot keep a socket open past the next re-check."""
        by_key: dict[str, list[Connection]] = defaultdict(list)
        for conn in self._connections.values():
            by_key[conn.principal.key_id].append(conn)
        wanted = list(by_key) if key_ids is None else [k for k in key_ids if k in by_key]
        if not wanted:
            return
        states = await self._authenticator.key_states(wanted)
        for key_id in wanted:
            state = states.get(key_id)
            for conn in by_key[key_id]:
                if state is None or state.revoked_at is not None:
                    await conn.close(CLOSE_REVOKED, "the API key was revoked")
                elif conn.principal.expires_at != state.expires_at:
                    conn.principal = replace(conn.principal, expires_at=state.expires_at)
        await self.close_expired()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            await self.close_expired()
            try:
                await self._presence.refresh()
            except Exception:
                log.exception("presence refresh failed")

    async def _rechecking(self) -> None:
        while True:
            await asyncio.sleep(self._key_recheck_seconds)
            try:
                await self.recheck_keys()
            except Exception:
                log.exception("re-checking open sockets' keys failed")


def _connected(conn: Connection, room_ids: list[str]) -> dict[str, object]:
    return {
        "connection_id": conn.id,
        "user_id": conn.user_id,
        "room_ids": room_ids,
        "transport": conn.transport,
    }


def _in_rooms(conn: Connection) -> bool:
    return any(target.startswith("room:") for target in conn.targets)
