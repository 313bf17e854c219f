"""The domain services the built-in channels use, registered by the Protocol each channel
asks for (`ChannelFactoryContext.service`): a channel never imports another domain's code,
the composition root (app/runtime.py) hands these to the factories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import WebhookEndpoint
from app.channels.provider_chain import RecipientCounts, SuppressedAddresses
from app.channels.push import PushDevice, PushSubscriptions
from app.channels.webhook import EndpointRef, WebhookEndpoints
from app.core.crypto import SecretBox
from app.core.db import Database
from app.notifications import recipient_counts
from app.providers import routing, suppressions
from app.providers.base import ProviderType
from app.providers.failover import ProviderRoutes, Route
from app.push import service as push_service
from app.webhooks import service as webhooks


class _Endpoints:
    """A tenant's webhook endpoints (app/webhooks)."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    async def subscribed(
        self, session: AsyncSession, client_id: str, event_type: str
    ) -> Sequence[EndpointRef]:
        """The client's enabled endpoints that receive `event_type`."""
        return await webhooks.subscribed_endpoints(session, client_id, event_type)

    async def by_ids(
        self, session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
    ) -> Sequence[EndpointRef]:
        """The client's endpoints among `endpoint_ids`."""
        return await webhooks.endpoints_by_ids(session, client_id, endpoint_ids)

    async def for_delivery(
        self, session: AsyncSession, client_id: str, endpoint_ids: Sequence[str]
    ) -> Mapping[str, WebhookEndpoint]:
        """The enabled ones with opened secrets (one it cannot open is left out)."""
        return await webhooks.endpoints_for_delivery(session, self._box, client_id, endpoint_ids)


class _ProviderRoutes:
    """A tenant's routing of a channel with its accounts opened (app/providers): the route
    and its providers, two queries per batch."""

    def __init__(self, box: SecretBox, types: Mapping[str, ProviderType]) -> None:
        self._box = box
        self._types = types

    async def route(self, session: AsyncSession, client_id: str, channel: str) -> Route:
        """The route, enabled accounts only, secrets opened (SecretBoxError if one cannot)."""
        return await routing.route_for_delivery(session, self._box, self._types, client_id, channel)


class _PushSubscriptions:
    """Users' push subscriptions (app/push)."""

    def __init__(self, box: SecretBox, db: Database) -> None:
        self._box = box
        self._db = db

    async def users_with_subscriptions(
        self, session: AsyncSession, client_id: str, user_ids: Sequence[str]
    ) -> set[str]:
        """Which of `user_ids` have a subscription."""
        return await push_service.users_with_subscriptions(session, client_id, user_ids)

    async def for_delivery(
        self, session: AsyncSession, client_id: str, user_ids: Sequence[str]
    ) -> Mapping[str, Sequence[PushDevice]]:
        """Their subscriptions, auth secrets opened, by user."""
        found = await push_service.for_delivery(session, self._box, client_id, user_ids)
        return {
            user_id: [
                PushDevice(s.id, s.user_id, s.kind, s.endpoint, s.p256dh, s.auth) for s in subs
            ]
            for user_id, subs in found.items()
        }

    async def remove_gone(self, client_id: str, subscription_ids: Sequence[str]) -> int:
        """Remove them, in a session of its own (the attempt holds none)."""
        async with self._db.session() as session:
            return await push_service.remove_gone(session, client_id, subscription_ids)


class _RecipientCounts:
    """Recipients per notification on a channel (app/notifications)."""

    async def per_delivery(
        self, session: AsyncSession, client_id: str, channel: str, delivery_ids: Sequence[str]
    ) -> Mapping[str, int]:
        """For each delivery, its notification's number of deliveries on `channel`."""
        return await recipient_counts.per_delivery(session, client_id, channel, delivery_ids)


class _Suppressions:
    """A tenant's suppressed addresses (app/providers)."""

    async def skip_reasons(
        self, session: AsyncSession, client_id: str, addresses: Sequence[str]
    ) -> Mapping[str, str]:
        """The suppressed ones among `addresses` and the skip reason each gets."""
        found = await suppressions.reasons_for(session, client_id, addresses)
        return {a: suppressions.SKIP_REASONS.get(r, f"suppressed: {r}") for a, r in found.items()}


def channel_services(
    box: SecretBox, db: Database, provider_types: Mapping[str, ProviderType] | None = None
) -> dict[type, object]:
    """The services for `ChannelFactoryContext.services`."""
    return {
        WebhookEndpoints: _Endpoints(box),
        ProviderRoutes: _ProviderRoutes(box, provider_types or {}),
        RecipientCounts: _RecipientCounts(),
        PushSubscriptions: _PushSubscriptions(box, db),
        SuppressedAddresses: _Suppressions(),
    }
