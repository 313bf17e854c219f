"""The domain services the built-in channels use, registered by the Protocol each channel
asks for (`ChannelFactoryContext.service`): a channel never imports another domain's code,
the composition root (app/runtime.py) hands these to the factories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.base import EmailConfig, WebhookEndpoint
from app.channels.email import EmailConfigs
from app.channels.webhook import EndpointRef, WebhookEndpoints
from app.core.crypto import SecretBox
from app.email import service as email_service
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


class _EmailConfigs:
    """A tenant's SMTP configuration (app/email)."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    async def config_for_delivery(
        self, session: AsyncSession, client_id: str
    ) -> EmailConfig | None:
        """The client's configuration with opened passwords, or None."""
        return await email_service.config_for_delivery(session, self._box, client_id)


def channel_services(box: SecretBox) -> dict[type, object]:
    """The services for `ChannelFactoryContext.services`."""
    return {WebhookEndpoints: _Endpoints(box), EmailConfigs: _EmailConfigs(box)}
