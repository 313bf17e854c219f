"""ChatAPI client: REST (`ChatAPI`, `AsyncChatAPI`), realtime (`connect`), webhooks."""

from chatapi_client._retry import RetryPolicy
from chatapi_client.client import AsyncChatAPI, ChatAPI
from chatapi_client.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ChatAPIError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ValidationError,
    WebhookVerificationError,
)
from chatapi_client.realtime import (
    RealtimeConnection,
    RealtimeError,
    RealtimeEvent,
    SyncRealtimeConnection,
)
from chatapi_client.webhooks import verify_webhook

__all__ = [
    "APIConnectionError",
    "AsyncChatAPI",
    "AuthenticationError",
    "BadRequestError",
    "ChatAPI",
    "ChatAPIError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RealtimeConnection",
    "RealtimeError",
    "RealtimeEvent",
    "RetryPolicy",
    "ServerError",
    "SyncRealtimeConnection",
    "ValidationError",
    "WebhookVerificationError",
    "verify_webhook",
]
