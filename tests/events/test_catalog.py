"""The event catalog: types with payload schemas, 422 sends once a tenant has a catalog, and
its OpenAPI 3.1 `webhooks` document."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator
from schemathesis.specs.openapi.definitions import OPENAPI_31

from tests.support.api import Api, Tenant

ORDER_SCHEMA = {
    "type": "object",
    "required": ["order_id"],
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
}


async def _create(api: Api, tenant: Tenant, **body: Any) -> httpx.Response:
    return await api.http.post("/api/v1/event-types", json=body, headers=tenant.auth)


async def _send(api: Api, tenant: Tenant, event_type: str, payload: Any) -> httpx.Response:
    body = {
        "channels": ["webhook"],
        "webhook": {"event_type": event_type, "payload": payload},
    }
    return await api.http.post("/api/v1/notifications/send", json=body, headers=tenant.auth)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return dict(r.json())


async def test_crud_and_schema_validation(api: Api) -> None:
    tenant = await api.tenant()
    bad = await _create(api, tenant, name="order.shipped", schema={"type": "not-a-type"})
    assert "Not a valid JSON Schema" in _problem(bad, 422)["detail"]
    made = await _create(
        api, tenant, name="order.shipped", description="Left the warehouse", schema=ORDER_SCHEMA
    )
    assert made.status_code == 201, made.text
    assert made.json()["schema"] == ORDER_SCHEMA and made.json()["archived"] is False
    _problem(await _create(api, tenant, name="order.shipped"), 409)
    _problem(await _create(api, tenant, name="delivery.exhausted"), 409)

    got = await api.http.get("/api/v1/event-types/order.shipped", headers=tenant.auth)
    assert got.status_code == 200 and got.json()["description"] == "Left the warehouse"
    patched = await api.http.patch(
        "/api/v1/event-types/order.shipped", json={"schema": None}, headers=tenant.auth
    )
    assert patched.status_code == 200 and patched.json()["schema"] is None
    assert patched.json()["description"] == "Left the warehouse"
    _problem(
        await api.http.patch(
            "/api/v1/event-types/order.shipped",
            json={"schema": {"minimum": "x"}},
            headers=tenant.auth,
        ),
        422,
    )
    listed = await api.http.get("/api/v1/event-types", headers=tenant.auth)
    assert [t["name"] for t in listed.json()["data"]] == ["order.shipped"]
    deleted = await api.http.delete("/api/v1/event-types/order.shipped", headers=tenant.auth)
    assert deleted.status_code == 204
    _problem(await api.http.get("/api/v1/event-types/order.shipped", headers=tenant.auth), 404)


async def test_sends_are_checked_only_once_a_catalog_exists(api: Api) -> None:
    tenant = await api.tenant()
    # No catalog: any event type is sent, as before.
    assert (await _send(api, tenant, "anything.goes", {})).status_code == 202
    assert (
        await _create(api, tenant, name="order.shipped", schema=ORDER_SCHEMA)
    ).status_code == 201

    unknown = _problem(await _send(api, tenant, "anything.goes", {}), 422)
    assert "Unknown event type" in unknown["detail"]
    off_schema = _problem(await _send(api, tenant, "order.shipped", {"total": 3}), 422)
    assert "order_id" in off_schema["detail"]
    wrong_type = _problem(
        await _send(api, tenant, "order.shipped", {"order_id": "A-1", "total": "3"}), 422
    )
    assert "total" in wrong_type["detail"]
    assert (await _send(api, tenant, "order.shipped", {"order_id": "A-1"})).status_code == 202

    # Archiving the only type leaves no catalog: sends are free again.
    r = await api.http.patch(
        "/api/v1/event-types/order.shipped", json={"archived": True}, headers=tenant.auth
    )
    assert r.status_code == 200 and r.json()["archived"] is True
    assert (await _send(api, tenant, "anything.goes", {})).status_code == 202


async def test_an_archived_type_is_unknown_while_others_are_live(api: Api) -> None:
    tenant = await api.tenant()
    for name in ("order.shipped", "order.paid"):
        assert (await _create(api, tenant, name=name)).status_code == 201
    await api.http.patch(
        "/api/v1/event-types/order.paid", json={"archived": True}, headers=tenant.auth
    )
    _problem(await _send(api, tenant, "order.paid", {}), 422)
    assert (await _send(api, tenant, "order.shipped", {})).status_code == 202
    default = await api.http.get("/api/v1/event-types", headers=tenant.auth)
    assert [t["name"] for t in default.json()["data"]] == ["order.shipped"]
    everything = await api.http.get(
        "/api/v1/event-types?include_archived=true", headers=tenant.auth
    )
    assert [t["name"] for t in everything.json()["data"]] == ["order.paid", "order.shipped"]


async def test_the_openapi_document_lists_the_live_types(api: Api) -> None:
    tenant = await api.tenant()
    await _create(api, tenant, name="order.shipped", description="Shipped", schema=ORDER_SCHEMA)
    await _create(api, tenant, name="user.created")
    await _create(api, tenant, name="old.thing", archived=True)
    r = await api.http.get("/api/v1/event-types/openapi.json", headers=tenant.auth)
    assert r.status_code == 200, r.text
    doc = r.json()
    # The OpenAPI 3.1 schema (as schemathesis ships it) accepts the document.
    errors = [e.message for e in Draft202012Validator(OPENAPI_31).iter_errors(doc)]
    assert errors == []
    assert doc["openapi"].startswith("3.1.")
    assert set(doc) >= {"openapi", "info", "webhooks"} and {"title", "version"} <= set(doc["info"])
    assert set(doc["webhooks"]) == {"order.shipped", "user.created"}
    post = doc["webhooks"]["order.shipped"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["data"] == ORDER_SCHEMA
    assert body["properties"]["type"] == {"const": "order.shipped"}
    assert {p["name"] for p in post["parameters"]} == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert (
        post["responses"] and len({w["post"]["operationId"] for w in doc["webhooks"].values()}) == 2
    )
    # Another tenant's document does not show these types.
    other = await api.tenant()
    theirs = await api.http.get("/api/v1/event-types/openapi.json", headers=other.auth)
    assert theirs.json()["webhooks"] == {}


async def test_a_schema_with_an_unresolvable_ref_is_a_422_not_a_500(api: Api) -> None:
    tenant = await api.tenant()
    remote = {"$ref": "https://schemas.example/order.json"}
    assert (await _create(api, tenant, name="order.remote", schema=remote)).status_code == 201
    problem = _problem(await _send(api, tenant, "order.remote", {"order_id": "A"}), 422)
    assert "cannot be applied" in problem["detail"]
