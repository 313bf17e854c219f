"""Every table model, imported so SQLModel.metadata (and Alembic) sees the whole schema."""

from app.analytics.models import DeliveryRollup, LatencyRollup, RollupState
from app.auth.models import ApiKey, ConnectToken
from app.events.models import EventType
from app.inbound.models import (
    InboundContentMark,
    InboundEvent,
    InboundRoomKey,
    InboundWebhook,
)
from app.inbox.models import InboxItem, NotificationPreference
from app.messages.models import Message
from app.notifications.models import Delivery, DeliveryAttempt, IdempotencyRecord, Notification
from app.providers.models import (
    Provider,
    ProviderEventRecord,
    ProviderRoute,
    PushSubscription,
    Suppression,
)
from app.rooms.models import Room, RoomMember
from app.system.models import Heartbeat
from app.tenants.models import Client
from app.users.models import User
from app.webhooks.models import WebhookEndpoint

__all__ = [
    "ApiKey",
    "Client",
    "ConnectToken",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryRollup",
    "EventType",
    "Heartbeat",
    "IdempotencyRecord",
    "InboundContentMark",
    "InboundEvent",
    "InboundRoomKey",
    "InboundWebhook",
    "InboxItem",
    "LatencyRollup",
    "Message",
    "Notification",
    "NotificationPreference",
    "Provider",
    "ProviderEventRecord",
    "ProviderRoute",
    "PushSubscription",
    "RollupState",
    "Room",
    "RoomMember",
    "Suppression",
    "User",
    "WebhookEndpoint",
]
