"""Notifications, webhook endpoints, e-mail configuration, the inbox and inbound hooks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chatapi_client._async.pagination import AsyncPager
from chatapi_client._async.resources_core import AsyncResource, body
from chatapi_client.models import (
    Attempt,
    EmailConfig,
    EmailTestResult,
    InboundEvent,
    InboundHook,
    InboxCount,
    InboxItem,
    Notification,
    Preferences,
    WebhookEndpoint,
)


class AsyncNotifications(AsyncResource):
    """`/notifications` (master key)."""

    async def send(
        self,
        *,
        channels: Sequence[str],
        recipients: Sequence[dict[str, Any]] | None = None,
        websocket: dict[str, Any] | None = None,
        email: dict[str, Any] | None = None,
        webhook: dict[str, Any] | None = None,
        send_at: datetime | str | None = None,
        metadata: dict[str, Any] | None = None,
        critical: bool | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Notification:
        """Send one notification. Every call carries an `Idempotency-Key` (made when not given)
        and its retries reuse it, so a retry after a dropped connection never sends twice."""
        key = idempotency_key or f"chatapi-py-{uuid.uuid4()}"
        payload = body(
            channels=list(channels),
            recipients=list(recipients) if recipients is not None else None,
            websocket=websocket,
            email=email,
            webhook=webhook,
            send_at=send_at.isoformat() if isinstance(send_at, datetime) else send_at,
            metadata=metadata,
            critical=critical,
            **extra,
        )
        data = await self._t.json(
            "POST",
            "/notifications/send",
            json=payload,
            headers={"Idempotency-Key": key},
            idempotent=True,
        )
        return Notification.model_validate(data)

    async def get(self, notification_id: str) -> Notification:
        """One notification with every delivery."""
        data = await self._t.json("GET", f"/notifications/{notification_id}")
        return Notification.model_validate(data)

    def list(
        self,
        *,
        status: str | None = None,
        channel: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Notification]:
        """Notifications, newest first."""
        params = {
            "status": status,
            "channel": channel,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit,
        }
        return AsyncPager(self._t, "/notifications", Notification, params)

    def attempts(self, notification_id: str, *, limit: int | None = None) -> AsyncPager[Attempt]:
        """Every delivery attempt of the notification."""
        path = f"/notifications/{notification_id}/attempts"
        return AsyncPager(self._t, path, Attempt, {"limit": limit})

    async def retry(self, notification_id: str) -> Notification:
        """Give the failed deliveries a fresh budget."""
        data = await self._t.json("POST", f"/notifications/{notification_id}/retry")
        return Notification.model_validate(data)

    async def cancel(self, notification_id: str) -> Notification:
        """Cancel what was not sent yet."""
        data = await self._t.json("POST", f"/notifications/{notification_id}/cancel")
        return Notification.model_validate(data)


class AsyncWebhookEndpoints(AsyncResource):
    """`/webhook-endpoints` (master key)."""

    async def create(
        self, url: str, *, description: str | None = None, event_types: Sequence[str] | None = None
    ) -> WebhookEndpoint:
        """A new endpoint; its `secret` is shown only in this answer."""
        payload = body(
            url=url,
            description=description,
            event_types=list(event_types) if event_types is not None else None,
        )
        data = await self._t.json("POST", "/webhook-endpoints", json=payload)
        return WebhookEndpoint.model_validate(data)

    def list(self, *, limit: int | None = None) -> AsyncPager[WebhookEndpoint]:
        """Every endpoint."""
        return AsyncPager(self._t, "/webhook-endpoints", WebhookEndpoint, {"limit": limit})

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint."""
        data = await self._t.json("GET", f"/webhook-endpoints/{endpoint_id}")
        return WebhookEndpoint.model_validate(data)

    async def update(self, endpoint_id: str, **fields: Any) -> WebhookEndpoint:
        """Change `url`, `description`, `event_types`, `disabled`."""
        data = await self._t.json("PATCH", f"/webhook-endpoints/{endpoint_id}", json=fields)
        return WebhookEndpoint.model_validate(data)

    async def delete(self, endpoint_id: str) -> None:
        """Delete the endpoint."""
        await self._t.request("DELETE", f"/webhook-endpoints/{endpoint_id}")

    async def rotate_secret(
        self, endpoint_id: str, grace_seconds: int | None = None
    ) -> WebhookEndpoint:
        """A new secret (shown once); both sign during `grace_seconds`."""
        data = await self._t.json(
            "POST",
            f"/webhook-endpoints/{endpoint_id}/rotate-secret",
            json=body(grace_seconds=grace_seconds),
        )
        return WebhookEndpoint.model_validate(data)


class AsyncEmailConfigResource(AsyncResource):
    """`/email-config` (master key)."""

    async def replace(self, **config: Any) -> EmailConfig:
        """Replace the SMTP configuration (send the password each time)."""
        return EmailConfig.model_validate(await self._t.json("PUT", "/email-config", json=config))

    async def get(self) -> EmailConfig:
        """The configuration (`password_set` instead of the password)."""
        return EmailConfig.model_validate(await self._t.json("GET", "/email-config"))

    async def delete(self) -> None:
        """Remove the configuration."""
        await self._t.request("DELETE", "/email-config")

    async def test(self, to: str) -> EmailTestResult:
        """Send a real test message through the configured server(s)."""
        data = await self._t.json("POST", "/email-config/test", json={"to": to})
        return EmailTestResult.model_validate(data)


class AsyncInbox(AsyncResource):
    """`/me/notifications` and `/me/preferences` (user key)."""

    def list(
        self,
        *,
        read: bool | None = None,
        seen: bool | None = None,
        archived: bool | None = None,
        event: str | None = None,
        limit: int | None = None,
    ) -> AsyncPager[InboxItem]:
        """The user's inbox, newest first."""
        params = {"read": read, "seen": seen, "archived": archived, "event": event, "limit": limit}
        return AsyncPager(self._t, "/me/notifications", InboxItem, params)

    async def count(self) -> InboxCount:
        """`{"unread","unseen","total"}`."""
        return InboxCount.model_validate(await self._t.json("GET", "/me/notifications/count"))

    async def _mark(self, item_id: str, action: str) -> InboxItem:
        data = await self._t.json("POST", f"/me/notifications/{item_id}/{action}", idempotent=True)
        return InboxItem.model_validate(data)

    async def mark_read(self, item_id: str) -> InboxItem:
        """Read (and seen)."""
        return await self._mark(item_id, "read")

    async def mark_unread(self, item_id: str) -> InboxItem:
        """Unread again."""
        return await self._mark(item_id, "unread")

    async def mark_seen(self, item_id: str) -> InboxItem:
        """Seen."""
        return await self._mark(item_id, "seen")

    async def archive(self, item_id: str) -> InboxItem:
        """Archived."""
        return await self._mark(item_id, "archive")

    async def unarchive(self, item_id: str) -> InboxItem:
        """Not archived."""
        return await self._mark(item_id, "unarchive")

    async def read_all(self) -> InboxCount:
        """Mark every item read."""
        data = await self._t.json("POST", "/me/notifications/read-all", idempotent=True)
        return InboxCount.model_validate(data)

    async def archive_read(self) -> InboxCount:
        """Archive every read item."""
        data = await self._t.json("POST", "/me/notifications/archive-read", idempotent=True)
        return InboxCount.model_validate(data)

    async def preferences(self) -> Preferences:
        """The user's preferences."""
        return Preferences.model_validate(await self._t.json("GET", "/me/preferences"))

    async def replace_preferences(self, preferences: Preferences | dict[str, Any]) -> Preferences:
        """Replace the user's preferences."""
        payload = preferences.model_dump() if isinstance(preferences, Preferences) else preferences
        return Preferences.model_validate(
            await self._t.json("PUT", "/me/preferences", json=payload)
        )


class AsyncInboundHooks(AsyncResource):
    """`/inbound-webhooks` (master key)."""

    async def create(self, name: str, action: str, **fields: Any) -> InboundHook:
        """A new hook (`config`, `scheme`, `signature`, `disabled`); `secret` shown once."""
        data = await self._t.json(
            "POST", "/inbound-webhooks", json={"name": name, "action": action, **fields}
        )
        return InboundHook.model_validate(data)

    def list(self, *, limit: int | None = None) -> AsyncPager[InboundHook]:
        """Every hook."""
        return AsyncPager(self._t, "/inbound-webhooks", InboundHook, {"limit": limit})

    async def get(self, hook_id: str) -> InboundHook:
        """One hook."""
        return InboundHook.model_validate(await self._t.json("GET", f"/inbound-webhooks/{hook_id}"))

    async def update(self, hook_id: str, **fields: Any) -> InboundHook:
        """Change `action`, `config`, `scheme`, `signature`, `disabled`."""
        data = await self._t.json("PATCH", f"/inbound-webhooks/{hook_id}", json=fields)
        return InboundHook.model_validate(data)

    async def delete(self, hook_id: str) -> None:
        """Delete the hook."""
        await self._t.request("DELETE", f"/inbound-webhooks/{hook_id}")

    async def rotate_secret(self, hook_id: str, grace_seconds: int | None = None) -> InboundHook:
        """A new secret; both verify during `grace_seconds`."""
        data = await self._t.json(
            "POST",
            f"/inbound-webhooks/{hook_id}/rotate-secret",
            json=body(grace_seconds=grace_seconds),
        )
        return InboundHook.model_validate(data)

    def events(
        self, hook_id: str, *, status: str | None = None, limit: int | None = None
    ) -> AsyncPager[InboundEvent]:
        """Received events with their outcome, newest first."""
        path = f"/inbound-webhooks/{hook_id}/events"
        return AsyncPager(self._t, path, InboundEvent, {"status": status, "limit": limit})

    async def replay(self, hook_id: str, event_id: str) -> InboundEvent:
        """Process an event again."""
        data = await self._t.json("POST", f"/inbound-webhooks/{hook_id}/events/{event_id}/replay")
        return InboundEvent.model_validate(data)
