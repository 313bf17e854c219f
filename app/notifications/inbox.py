"""The connect hook of the in-app inbox: a user's parked websocket notifications are
delivered when the user connects — off the connect path, so the handshake never waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.core.db import Database
from app.core.doorbell import Doorbell
from app.notifications import parked_repository as parking
from app.realtime.connection import Connection

log = logging.getLogger("chatapi.notifications")


def parked_flush_hook(db: Database, doorbell: Doorbell) -> Callable[[Connection], Awaitable[None]]:
    """A Hub connect hook: when a user connects, a background task checks for parked
    deliveries (one indexed read) and, if any, asks a worker to flush them."""
    running: set[asyncio.Task[None]] = set()

    async def hook(conn: Connection) -> None:
        if conn.user_id is None:
            return
        task = asyncio.create_task(_flush_if_parked(db, doorbell, conn.client_id, conn.user_id))
        running.add(task)  # a reference, or the task may be collected mid-flight
        task.add_done_callback(running.discard)

    return hook


async def _flush_if_parked(db: Database, doorbell: Doorbell, client_id: str, user_id: str) -> None:
    try:
        async with db.read_connection() as conn:  # one statement: no transaction around it
            if not await parking.has_parked(conn, client_id, user_id):
                return
        await doorbell.ring_flush(client_id, user_id)
    except Exception:
        log.exception("checking parked notifications on connect failed")
