# Generated from chatapi_client/_async by scripts/unasync.py: do not edit.
"""The asyncio REST client: every resource on one transport."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

import httpx

from chatapi_client._sync.resources_core import (
    Auth,
    Clients,
    Keys,
    Messages,
    Rooms,
    Users,
)
from chatapi_client._sync.resources_relay import (
    EmailConfigResource,
    InboundHooks,
    Inbox,
    Notifications,
    WebhookEndpoints,
)
from chatapi_client._sync.transport import Transport
from chatapi_client._retry import RetryPolicy

Self = TypeVar("Self", bound="ChatAPIBase")


class ChatAPIBase:
    """The REST surface. `base_url`/`api_key` default to `CHATAPI_URL`/`CHATAPI_API_KEY`;
    pass your own `http` client to share its pool, proxies or TLS settings."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = RetryPolicy(
                max_retries=max_retries,
                backoff_base=policy.backoff_base,
                backoff_max=policy.backoff_max,
                max_retry_after=policy.max_retry_after,
            )
        self.transport = Transport(base_url, api_key, http, policy, timeout)
        self.clients = Clients(self.transport)
        self.users = Users(self.transport)
        self.auth = Auth(self.transport)
        self.keys = Keys(self.transport)
        self.rooms = Rooms(self.transport)
        self.messages = Messages(self.transport)
        self.notifications = Notifications(self.transport)
        self.webhook_endpoints = WebhookEndpoints(self.transport)
        self.email_config = EmailConfigResource(self.transport)
        self.inbox = Inbox(self.transport)
        self.inbound_hooks = InboundHooks(self.transport)

    @property
    def base_url(self) -> str:
        """The server's origin, e.g. `http://localhost:8000`."""
        return self.transport.base_url

    @property
    def api_key(self) -> str | None:
        """The key every request carries."""
        return self.transport.api_key

    def close(self) -> None:
        """Close the HTTP client (unless it was passed in)."""
        self.transport.close()

    def __enter__(self: Self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
