"""The worker's in-app push: a batch's in-app deliveries, just recorded delivered, go to
their online users in one set-based push (app/notifications/push.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from app.channels.names import IN_APP
from app.notifications.delivery_results import AttemptResult
from app.notifications.push import InAppPush
from app.notifications.push_repository import OwedPush

log = logging.getLogger("chatapi.notifications")


async def push_delivered(push: InAppPush, results: Sequence[AttemptResult]) -> int:
    """Push these delivered in-app results to their users' live connections; how many.
    Never raises: a failure (Redis down, our pool exhausted) leaves the pushes owed for the
    sweep and the user's next connect, and spends no attempt (the rows are delivered)."""
    pushes = [
        OwedPush(
            r.delivery.id,
            r.delivery.client_id,
            r.delivery.recipient_user_id,
            r.delivery.notification_id,
        )
        for r in results
        if r.delivery.recipient_user_id is not None
    ]
    contents = {r.notification.id: r.notification.content.get(IN_APP, {}) for r in results}
    return await push_owed(push, pushes, contents)


async def push_owed(
    push: InAppPush, pushes: Sequence[OwedPush], contents: dict[str, dict[str, object]]
) -> int:
    """Push delivered in-app items (`contents`: each notification's in-app content) to
    their users' live connections; how many. Never raises: a failure leaves them owed."""
    if not pushes:
        return 0
    try:
        return await push.push_online(pushes, contents)
    except Exception:
        log.warning("in-app push after delivery failed; the sweep pushes", exc_info=True)
        return 0
