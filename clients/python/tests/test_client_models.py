"""The hand-written models name only fields the live server's OpenAPI document has, so a
renamed or removed server field fails here rather than silently reading None."""

from __future__ import annotations

import httpx
import pytest
from conftest import Server
from pydantic import BaseModel

from chatapi_client import models

# model → the server's schema of that answer (components/schemas in /api/v1/openapi.json)
SCHEMAS: dict[type[BaseModel], str] = {
    models.ClientInfo: "ClientOut",
    models.User: "UserOut",
    models.Login: "LoginResponse",
    models.KeyInfo: "KeyOut",
    models.Room: "RoomOut",
    models.Member: "MemberOut",
    models.Message: "MessageOut",
    models.Notification: "NotificationOut",
    models.Delivery: "DeliveryOut",
    models.Attempt: "AttemptOut",
    models.WebhookEndpoint: "EndpointOut",
    models.EmailConfig: "EmailConfigOut",
    models.InboxItem: "InboxItemOut",
    models.InboxCount: "InboxCount",
    models.Preferences: "Preferences",
    models.InboundHook: "HookOut",
    models.InboundEvent: "EventOut",
}
# Fields that appear only in some answers of the same schema family (documented in docs/api.md).
OPTIONAL = {
    (models.Login, "device_id"),  # kit-server's devices (API.md §3)
    (models.WebhookEndpoint, "secret"),  # only in create/rotate answers (EndpointWithSecret)
    (models.InboundHook, "secret"),
    (models.InboxCount, "updated"),  # read-all / archive-read answers
    (models.Notification, "deliveries"),
    (models.Notification, "delivery_counts"),
}


@pytest.fixture(scope="module")
def schemas(server: Server) -> dict[str, dict[str, object]]:
    doc = httpx.get(f"{server.base}/api/v1/openapi.json", timeout=30).json()
    return dict(doc["components"]["schemas"])


@pytest.mark.parametrize("model", list(SCHEMAS), ids=lambda m: m.__name__)
def test_model_fields_exist_on_the_server(
    model: type[BaseModel], schemas: dict[str, dict[str, object]]
) -> None:
    properties = schemas[SCHEMAS[model]].get("properties")
    assert isinstance(properties, dict)
    unknown = {
        name
        for name in model.model_fields
        if name not in properties and (model, name) not in OPTIONAL
    }
    assert not unknown, f"{model.__name__} names fields {SCHEMAS[model]} lacks: {unknown}"
