"""What a batch of claimed deliveries needs before its attempts: their notifications and,
per channel, their targets (one read per channel and batch, whatever the channel needs)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import DeliveryTarget, Outcome
from app.notifications import finish_repository as finishing
from app.notifications.models import Delivery, Notification
from app.runtime import Runtime


@dataclass(slots=True)
class Loaded:
    """A claimed batch's notifications and targets."""

    notifications: dict[str, Notification]
    # By delivery id: its target as its channel loaded it, or the outcome that stands for
    # its attempt when it cannot be sent (its endpoint deleted, its configuration sealed
    # under another key).
    targets: dict[str, DeliveryTarget | Outcome]


async def load(
    rt: Runtime, session: AsyncSession, client_id: str, claimed: list[Delivery]
) -> Loaded:
    """The claimed deliveries' notifications and targets, read in `session`."""
    loaded = Loaded({}, {})
    if not claimed:
        return loaded
    by_channel: dict[str, list[DeliveryTarget]] = defaultdict(list)
    for d in claimed:
        by_channel[d.channel].append(target_of(d))
    loaded.notifications = await finishing.get_many(
        session, client_id, (d.notification_id for d in claimed)
    )
    for name, targets in by_channel.items():
        channel = rt.channels.get(name)
        if channel is not None:  # otherwise `_attempt` defers it
            # One read per channel and batch, whatever the channel needs.
            loaded.targets.update(await channel.load_targets(session, client_id, targets))
    return loaded


def target_of(delivery: Delivery) -> DeliveryTarget:
    """The delivery's target as stored on its row."""
    return DeliveryTarget(
        delivery_id=delivery.id,
        client_id=delivery.client_id,
        user_id=delivery.recipient_user_id,
        recipient=delivery.recipient,
        endpoint_id=delivery.endpoint_id,
    )
