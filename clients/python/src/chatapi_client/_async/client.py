"""The asyncio REST client: every resource on one transport."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

import httpx

from chatapi_client._async.resources_core import (
    AsyncAuth,
    AsyncClients,
    AsyncKeys,
    AsyncMessages,
    AsyncRooms,
    AsyncUsers,
)
from chatapi_client._async.resources_relay import (
    AsyncEmailConfigResource,
    AsyncInboundHooks,
    AsyncInbox,
    AsyncNotifications,
    AsyncWebhookEndpoints,
)
from chatapi_client._async.transport import AsyncTransport
from chatapi_client._retry import RetryPolicy

Self = TypeVar("Self", bound="AsyncChatAPIBase")


class AsyncChatAPIBase:
    """The REST surface. `base_url`/`api_key` default to `CHATAPI_URL`/`CHATAPI_API_KEY`;
    pass your own `http` client to share its pool, proxies or TLS settings."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
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
        self.transport = AsyncTransport(base_url, api_key, http, policy, timeout)
        self.clients = AsyncClients(self.transport)
        self.users = AsyncUsers(self.transport)
        self.auth = AsyncAuth(self.transport)
        self.keys = AsyncKeys(self.transport)
        self.rooms = AsyncRooms(self.transport)
        self.messages = AsyncMessages(self.transport)
        self.notifications = AsyncNotifications(self.transport)
        self.webhook_endpoints = AsyncWebhookEndpoints(self.transport)
        self.email_config = AsyncEmailConfigResource(self.transport)
        self.inbox = AsyncInbox(self.transport)
        self.inbound_hooks = AsyncInboundHooks(self.transport)

    @property
    def base_url(self) -> str:
        """The server's origin, e.g. `http://localhost:8000`."""
        return self.transport.base_url

    @property
    def api_key(self) -> str | None:
        """The key every request carries."""
        return self.transport.api_key

    async def close(self) -> None:
        """Close the HTTP client (unless it was passed in)."""
        await self.transport.close()

    async def __aenter__(self: Self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
