"""The connect hook of the in-app inbox: a user's owed pushes (in-app notifications stored
while the user was offline) go to the user's connections when the user connects — off the
connect path, so the handshake never waits, oldest first (app/notifications/push.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.notifications.push import InAppPush
from app.realtime.connection import Connection

log = logging.getLogger("chatapi.notifications")


def owed_push_hook(push: InAppPush) -> Callable[[Connection], Awaitable[None]]:
    """A Hub connect hook: when a user connects, a background task pushes the user's owed
    in-app notifications (one indexed read when there are none)."""
    running: set[asyncio.Task[None]] = set()

    async def hook(conn: Connection) -> None:
        if conn.user_id is None:
            return
        task = asyncio.create_task(_push_owed(push, conn.client_id, conn.user_id))
        running.add(task)  # a reference, or the task may be collected mid-flight
        task.add_done_callback(running.discard)

    return hook


async def _push_owed(push: InAppPush, client_id: str, user_id: str) -> None:
    try:
        await push.on_connect(client_id, user_id)
    except Exception:
        # Still owed: the next connect (or the sweep, while recent) pushes them.
        log.exception("pushing owed notifications on connect failed")
