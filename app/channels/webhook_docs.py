"""The OpenAPI document's `webhooks` section: the requests the webhook channel sends.

OpenAPI 3.1 describes outgoing calls under `webhooks` (FastAPI's `app.webhooks`): here one
entry per kind of event — any event type a client sends (`POST /notifications/send` with
`webhook.event_type`, an inbound hook's `forward`) and the operational events
`delivery.exhausted` and `endpoint.disabled` — each with the body `{"type","timestamp","data"}`
and the Standard Webhooks headers. These functions are never called: they only describe.
tests/channels/test_webhook_docs.py holds real requests of the channel to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from app.notifications.operational import DeliveryExhaustedData, EndpointDisabledData

_SIGNING = (
    "Signed per Standard Webhooks, so the `standardwebhooks` and `svix` libraries verify it: "
    '`webhook-signature` is `v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.'
    "{body}\">` keyed with the base64 part of the endpoint's `whsec_` secret; during a "
    "secret rotation's grace two signatures, space-separated, either may match. "
    "`webhook-id` is the delivery id, the same on every retry: dedupe on it."
)

# The receiver's answer decides the delivery (app/channels/webhook.py `_classify`).
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Any 2xx: delivered."},
    410: {"description": "Gone: the endpoint is disabled at once (`endpoint.disabled`)."},
    429: {"description": "Retried; a `Retry-After` (seconds or HTTP date) is honoured."},
    "default": {
        "description": "Anything else, a redirect, a timeout or a refused connection: retried on "
        "DELIVERY_RETRY_SCHEDULE; after the last attempt the delivery is `failed` and "
        "`delivery.exhausted` is emitted."
    },
}


class SignatureHeaders(BaseModel):
    """The Standard Webhooks headers of every request."""

    model_config = ConfigDict(extra="allow")

    webhook_id: str = Field(description="The delivery id: stable across retries.")
    webhook_timestamp: str = Field(
        pattern=r"^[0-9]+$", description="Unix seconds when this attempt was signed."
    )
    webhook_signature: str = Field(
        pattern=r"^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$",
        description="`v1,<base64 signature>`, one per live secret.",
    )


class WebhookEvent(BaseModel):
    """The body of every webhook request."""

    type: str = Field(description="The event type.", examples=["order.shipped"])
    timestamp: datetime = Field(description="When the notification was accepted (UTC).")
    data: dict[str, Any] = Field(description="`webhook.payload` of the send, as given.")


class DeliveryExhaustedEvent(BaseModel):
    """`delivery.exhausted`."""

    type: Literal["delivery.exhausted"]
    timestamp: datetime
    data: DeliveryExhaustedData


class EndpointDisabledEvent(BaseModel):
    """`endpoint.disabled`."""

    type: Literal["endpoint.disabled"]
    timestamp: datetime
    data: EndpointDisabledData


Signed = Annotated[SignatureHeaders, Header()]


def install_webhook_docs(webhooks: APIRouter) -> None:
    """Describe the outgoing requests on `webhooks` (the app's `app.webhooks`)."""

    @webhooks.post(
        "{event_type}",
        operation_id="webhooks.event",
        tags=["webhooks"],
        summary="An event a client sent",
        responses=RESPONSES,
        response_class=Response,  # only the status counts (the body's start is kept as the reply)
        description="Sent to every enabled endpoint subscribed to the event type (or to the "
        "send's `webhook.endpoint_ids`) for `POST /notifications/send` with the `webhook` "
        "channel, and for an inbound hook whose action is `forward`. " + _SIGNING,
    )
    def client_event(event: WebhookEvent, headers: Signed) -> None:
        """Never called: describes the request."""

    @webhooks.post(
        "delivery.exhausted",
        operation_id="webhooks.delivery_exhausted",
        tags=["webhooks"],
        summary="A delivery failed its last attempt",
        responses=RESPONSES,
        response_class=Response,  # only the status counts (the body's start is kept as the reply)
        description="Sent to the tenant's endpoints subscribed to `delivery.exhausted` (never "
        "the endpoint that failed, and never for a failed operational event) and published "
        "to its master-key sockets. " + _SIGNING,
    )
    def delivery_exhausted(event: DeliveryExhaustedEvent, headers: Signed) -> None:
        """Never called: describes the request."""

    @webhooks.post(
        "endpoint.disabled",
        operation_id="webhooks.endpoint_disabled",
        tags=["webhooks"],
        summary="The service disabled an endpoint",
        responses=RESPONSES,
        response_class=Response,  # only the status counts (the body's start is kept as the reply)
        description="Sent once to the tenant's other endpoints subscribed to "
        "`endpoint.disabled` and published to its master-key sockets. " + _SIGNING,
    )
    def endpoint_disabled(event: EndpointDisabledEvent, headers: Signed) -> None:
        """Never called: describes the request."""
