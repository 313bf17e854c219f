"""Per-room order: each `seq` once, in order, whatever the socket delivered twice or missed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Deliver = Callable[[dict[str, Any]], None]


class RoomOrder:
    """The last delivered `seq` of each room, and live messages held while a room catches up.

    A room with no known position delivers its first message as it comes (a room joined
    while connected). Otherwise a message is delivered only when it is the next `seq`; a
    later one is held and the room is marked `needs_sync`.
    """

    def __init__(self, deliver: Deliver, positions: dict[str, int] | None = None) -> None:
        self.last: dict[str, int] = dict(positions or {})
        self.held: dict[str, dict[int, dict[str, Any]]] = {}
        self.syncing: set[str] = set()
        self._deliver = deliver

    def live(self, message: dict[str, Any]) -> bool:
        """Take a live `message.created`; True when the room must sync (a gap)."""
        room, seq = str(message["room_id"]), int(message["seq"])
        last = self.last.get(room)
        if room in self.syncing or (last is not None and seq > last + 1):
            self.held.setdefault(room, {})[seq] = message
            return room not in self.syncing
        if last is None or seq == last + 1:
            self._accept(room, seq, message)
        return False

    def synced(self, room: str, messages: list[dict[str, Any]]) -> None:
        """Take a page of `sync` (consecutive, after `last`)."""
        for message in messages:
            seq = int(message["seq"])
            if seq > self.last.get(room, 0):
                self._accept(room, seq, message)

    def flush(self, room: str) -> bool:
        """After the last sync page: deliver the held messages that now follow; True when a
        gap remains (the room must sync again)."""
        held = self.held.pop(room, {})
        for seq in sorted(held):
            last = self.last.get(room, 0)
            if seq <= last:
                continue
            if seq != last + 1:
                self.held[room] = {s: m for s, m in held.items() if s >= seq}
                return True
            self._accept(room, seq, held[seq])
        return False

    def _accept(self, room: str, seq: int, message: dict[str, Any]) -> None:
        self.last[room] = seq
        self._deliver(message)
