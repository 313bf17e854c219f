"""Request and response shapes of `/notifications` (API.md §6)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from app.channels.content import (
    EmailContent,
    WebhookContent,
    WebsocketContent,
)
from app.core.bounds import Metadata
from app.core.phone import E164
from app.notifications.models import (
    DELIVERY_STATUSES,
    Delivery,
    DeliveryAttempt,
    Notification,
)

MAX_RECIPIENTS = 10_000
NOTIFICATION_STATUSES = ("pending", "partial", "delivered", "failed", "scheduled", "canceled")
NotificationStatus = Literal["pending", "partial", "delivered", "failed", "scheduled", "canceled"]
DeliveryStatus = Literal[
    "pending",
    "sending",
    "delivered",
    "retrying",
    "failed",
    "canceled",
    "skipped",
    "bounced",
    "complained",
]
assert set(DeliveryStatus.__args__) == set(DELIVERY_STATUSES)  # type: ignore[attr-defined]


class Recipient(BaseModel):
    """Exactly one of `user_id`, `external_id` (a user of the client), `email` (an address,
    for the e-mail channel only) or `phone` (an E.164 number, for the SMS channel only)."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(default=None, min_length=1, max_length=26)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    email: EmailStr | None = None
    phone: E164 | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Recipient:
        keys = (self.user_id, self.external_id, self.email, self.phone)
        if len([v for v in keys if v is not None]) != 1:
            raise ValueError("a recipient has exactly one of user_id, external_id, email, phone")
        return self


class SendRequest(BaseModel):
    """`POST /notifications/send`. A plug-in channel's content is a top-level object named
    after the channel (e.g. `"sms": {...}`)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "channels": ["websocket", "email"],
                    "recipients": [{"external_id": "crm-42"}, {"email": "ops@example.com"}],
                    "websocket": {"event": "order.shipped", "data": {"order_id": "A-1042"}},
                    "email": {"subject": "Your order shipped", "text": "It is on its way."},
                    "idempotency_key": "order-A-1042-shipped",
                }
            ]
        },
    )

    channels: list[Annotated[str, Field(min_length=1, max_length=16)]] = Field(
        min_length=1, max_length=16
    )
    recipients: list[Recipient] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    websocket: WebsocketContent | None = None
    email: EmailContent | None = None
    webhook: WebhookContent | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    send_at: datetime | None = None
    metadata: Metadata = Field(default_factory=dict)
    critical: bool = False

    @field_validator("channels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each channel may be listed once")
        return value

    @field_validator("send_at")
    @classmethod
    def _with_offset(cls, value: datetime | None) -> datetime | None:
        # A time without an offset is the sender's local time or UTC: we cannot tell which,
        # and guessing wrong sends hours early or late. (Its bounds: app/notifications/
        # scheduling.py, against the clock, in the service.)
        if value is not None and value.utcoffset() is None:
            raise ValueError(
                "must carry a UTC offset, e.g. 2026-01-31T12:00:00Z or 2026-01-31T13:00:00+01:00"
            )
        return value

    def plugin_content(self) -> dict[str, Any]:
        """The top-level objects beyond the declared fields (plug-in channels' content)."""
        return dict(self.model_extra or {})

    def request_hash(self) -> str:
        """SHA-256 of the canonical request without its idempotency key: what "the same
        request" means for an idempotency key."""
        body = self.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"})
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class DeliveryOut(BaseModel):
    """One (channel, recipient) of a notification."""

    id: str
    channel: str
    recipient: dict[str, Any]
    status: DeliveryStatus = Field(
        description="In-app (websocket): `delivered` once its inbox item is stored, which the "
        "send does (already so in the 202) unless the send is scheduled; its `notification` "
        "event goes to live connections at once and to an offline user on connect, at least "
        "once (a repeat has the same `inbox_id`)"
    )
    attempts: int
    last_error: str | None
    skip_reason: str | None
    delivered_at: datetime | None = Field(
        description="When it was delivered; in-app: when its inbox item was stored"
    )
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        """From the row."""
        return cls(
            id=d.id,
            channel=d.channel,
            recipient=d.recipient,
            status=d.status,  # type: ignore[arg-type]
            attempts=d.attempts,
            last_error=d.last_error,
            skip_reason=d.skip_reason,
            delivered_at=d.delivered_at,
            next_attempt_at=d.next_attempt_at,
        )


class NotificationOut(BaseModel):
    """A notification with every delivery (the send answer and `GET /notifications/{id}`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "01JD6Z7D4E5F6G7H8J9K0M1N2P",
                    "status": "pending",
                    "channels": ["websocket", "email"],
                    "created_at": "2026-12-01T09:30:00Z",
                    "send_at": "2026-12-01T09:30:00Z",
                    "idempotency_key": "order-1042-shipped",
                    "metadata": {},
                    "deliveries": [
                        {
                            "id": "01JD6Z7E5F6G7H8J9K0M1N2P3Q",
                            "channel": "email",
                            "recipient": {
                                "user_id": "01JD6Z4A1B2C3D4E5F6G7H8J9K",
                                "email": "ada@example.com",
                            },
                            "status": "pending",
                            "attempts": 0,
                            "last_error": None,
                            "skip_reason": None,
                            "delivered_at": None,
                            "next_attempt_at": "2026-12-01T09:30:00Z",
                        }
                    ],
                }
            ]
        }
    )

    id: str
    status: NotificationStatus
    channels: list[str]
    created_at: datetime
    send_at: datetime
    idempotency_key: str | None
    metadata: dict[str, Any]
    deliveries: list[DeliveryOut]

    @classmethod
    def of(cls, n: Notification, deliveries: list[Delivery]) -> NotificationOut:
        """From the rows."""
        return cls(
            id=n.id,
            status=n.status,  # type: ignore[arg-type]
            channels=n.channels,
            created_at=n.created_at,
            send_at=n.send_at,
            idempotency_key=n.idempotency_key,
            metadata=n.metadata_,
            deliveries=[DeliveryOut.of(d) for d in deliveries],
        )


class NotificationSummary(BaseModel):
    """A notification in a listing: how many deliveries are in each status, not each one."""

    id: str
    status: NotificationStatus
    channels: list[str]
    created_at: datetime
    send_at: datetime
    idempotency_key: str | None
    metadata: dict[str, Any]
    delivery_counts: dict[str, int]

    @classmethod
    def of(cls, n: Notification, counts: dict[str, int]) -> NotificationSummary:
        """From the row and its per-status counts."""
        return cls(
            id=n.id,
            status=n.status,  # type: ignore[arg-type]
            channels=n.channels,
            created_at=n.created_at,
            send_at=n.send_at,
            idempotency_key=n.idempotency_key,
            metadata=n.metadata_,
            delivery_counts=counts,
        )


class NotificationPage(BaseModel):
    """A page of notifications, newest first."""

    data: list[NotificationSummary]
    has_more: bool
    next_cursor: str | None


class AttemptOut(BaseModel):
    """One attempt of one delivery."""

    id: str
    delivery_id: str
    attempted_at: datetime
    channel: str
    recipient: dict[str, Any]
    outcome: str
    response_code: int | None
    reply: str | None
    duration_ms: int
    error: str | None
    served_by: str | None

    @classmethod
    def of(cls, a: DeliveryAttempt, channel: str, recipient: dict[str, Any]) -> AttemptOut:
        """From the row and its delivery's channel and recipient."""
        return cls(
            id=a.id,
            delivery_id=a.delivery_id,
            attempted_at=a.attempted_at,
            channel=channel,
            recipient=recipient,
            outcome=a.outcome,
            response_code=a.response_code,
            reply=a.reply,
            duration_ms=a.duration_ms,
            error=a.error,
            served_by=a.served_by,
        )


class AttemptPage(BaseModel):
    """A page of attempts, oldest first."""

    data: list[AttemptOut]
    has_more: bool
    next_cursor: str | None
