"""`/webhook-endpoints` on both databases: secrets shown once and sealed at rest, the SSRF
guard at creation, rotation grace, and the failure policy that disables endpoints."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import ManualClock, utcnow
from app.core.crypto import SecretBox
from app.core.db import Database
from app.main import create_app
from app.webhooks.service import DisablePolicy, endpoints_for_delivery, record_outcome
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant

PATH = "/api/v1/webhook-endpoints"
# A public address literal: passes the SSRF guard without DNS.
PUBLIC_URL = "https://93.184.215.14/hooks/chatapi"


def _db(api: Api) -> Database:
    assert api.app is not None
    db: Database = api.app.state.runtime.db
    return db


def _box(api: Api) -> SecretBox:
    assert api.app is not None
    box: SecretBox = api.app.state.runtime.secret_box
    return box


async def _create(api: Api, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"url": PUBLIC_URL, "description": "orders", "event_types": ["order.shipped"], **fields}
    r = await api.http.post(PATH, json=body, headers=tenant.auth)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _raw_row(api: Api, endpoint_id: str) -> dict[str, Any]:
    async with _db(api).session() as session:
        row = (
            await session.execute(
                text("SELECT * FROM webhook_endpoints WHERE id = :id"), {"id": endpoint_id}
            )
        ).one()
    return dict(row._mapping)


async def _delivery_secrets(api: Api, tenant: Tenant, endpoint_id: str) -> tuple[str, ...] | None:
    async with _db(api).session() as session:
        found = await endpoints_for_delivery(session, _box(api), tenant.id, [endpoint_id])
    return found[endpoint_id].secrets if endpoint_id in found else None


async def test_secret_is_shown_once_and_stored_only_sealed(api: Api) -> None:
    tenant = await api.tenant()
    created = await _create(api, tenant)
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert created["event_types"] == ["order.shipped"] and created["disabled"] is False
    endpoint_id = created["id"]

    later = [
        await api.http.get(f"{PATH}/{endpoint_id}", headers=tenant.auth),
        await api.http.get(PATH, headers=tenant.auth),
        await api.http.patch(
            f"{PATH}/{endpoint_id}", json={"description": "renamed"}, headers=tenant.auth
        ),
    ]
    for response in later:
        assert response.status_code == 200, response.text
        assert secret not in response.text and "whsec_" not in response.text
        assert "secret" not in response.json() and "secret_sealed" not in response.text
    assert later[1].json()["data"][0]["id"] == endpoint_id
    assert later[2].json()["description"] == "renamed"

    row = await _raw_row(api, endpoint_id)
    assert all(secret not in str(value) for value in row.values())
    assert _box(api).open(row["secret_sealed"]) == secret
    assert await _delivery_secrets(api, tenant, endpoint_id) == (secret,)


async def test_list_is_paged_by_cursor(api: Api) -> None:
    tenant = await api.tenant()
    ids = [(await _create(api, tenant))["id"] for _ in range(3)]
    first = (await api.http.get(PATH, params={"limit": 2}, headers=tenant.auth)).json()
    assert [e["id"] for e in first["data"]] == ids[:2] and first["has_more"] is True
    second = (
        await api.http.get(
            PATH, params={"limit": 2, "cursor": first["next_cursor"]}, headers=tenant.auth
        )
    ).json()
    assert [e["id"] for e in second["data"]] == ids[2:] and second["has_more"] is False


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),  # a name resolving to 127.0.0.1
        ("http://169.254.169.254/latest", "metadata"),
    ],
)
async def test_private_targets_are_refused_at_creation_naming_why(
    api: Api, url: str, reason: str
) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json={"url": url}, headers=tenant.auth)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert reason in r.json()["detail"]
    listed = (await api.http.get(PATH, headers=tenant.auth)).json()["data"]
    assert listed == []


async def test_a_private_refusal_names_the_switch_and_that_loopback_counts(api: Api) -> None:
    tenant = await api.tenant()
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook", "http://10.1.2.3/"):
        r = await api.http.post(PATH, json={"url": url}, headers=tenant.auth)
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert "WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in detail, detail
        assert "loopback included" in detail, detail


async def test_a_refused_name_does_not_reveal_its_address(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(PATH, json={"url": "http://localhost:8080/hook"}, headers=tenant.auth)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "localhost is loopback" in detail, detail
    assert "127.0.0.1" not in detail and "::1" not in detail, detail


async def test_patch_to_a_private_url_is_refused_and_changes_nothing(api: Api) -> None:
    tenant = await api.tenant()
    endpoint = await _create(api, tenant)
    r = await api.http.patch(
        f"{PATH}/{endpoint['id']}", json={"url": "http://192.168.1.1/x"}, headers=tenant.auth
    )
    assert r.status_code == 422 and "private" in r.json()["detail"]
    got = (await api.http.get(f"{PATH}/{endpoint['id']}", headers=tenant.auth)).json()
    assert got["url"] == PUBLIC_URL


@pytest.fixture
async def private_api(db_url: str) -> AsyncIterator[Api]:
    app = create_app(
        make_settings(db_url, WEBHOOK_ALLOW_PRIVATE_TARGETS=True), run_embedded_worker=False
    )
    async for http in app_client(app):
        yield Api(http, app=app)


async def test_private_targets_are_allowed_when_configured(private_api: Api) -> None:
    tenant = await private_api.tenant()
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook"):
        r = await private_api.http.post(PATH, json={"url": url}, headers=tenant.auth)
        assert r.status_code == 201, r.text
    # Cloud metadata stays refused even then, and the answer says the switch is no way out.
    r = await private_api.http.post(
        PATH, json={"url": "http://169.254.169.254/"}, headers=tenant.auth
    )
    assert r.status_code == 422
    assert "whatever WEBHOOK_ALLOW_PRIVATE_TARGETS says" in r.json()["detail"], r.text


async def test_invalid_bodies_are_422(api: Api) -> None:
    tenant = await api.tenant()
    for body in (
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": PUBLIC_URL, "event_types": ["has space"]},
        {"url": PUBLIC_URL, "secret": "whsec_mine"},
    ):
        r = await api.http.post(PATH, json=body, headers=tenant.auth)
        assert r.status_code == 422, body
    endpoint = await _create(api, tenant)
    for grace in (8 * 86400, -1, True, "60"):
        r = await api.http.post(
            f"{PATH}/{endpoint['id']}/rotate-secret",
            json={"grace_seconds": grace},
            headers=tenant.auth,
        )
        assert r.status_code == 422, grace


async def test_rotation_signs_with_both_secrets_during_grace_then_only_the_new(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    created = await _create(api, tenant)
    old, endpoint_id = created["secret"], created["id"]
    r = await api.http.post(
        f"{PATH}/{endpoint_id}/rotate-secret", json={"grace_seconds": 3600}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert r.json()["previous_secret_expires_at"] is not None

    assert await _delivery_secrets(api, tenant, endpoint_id) == (new, old)
    got = await api.http.get(f"{PATH}/{endpoint_id}", headers=tenant.auth)
    assert new not in got.text and old not in got.text

    clock.advance(3599)
    assert await _delivery_secrets(api, tenant, endpoint_id) == (new, old)
    clock.advance(2)
    assert await _delivery_secrets(api, tenant, endpoint_id) == (new,)
    got = (await api.http.get(f"{PATH}/{endpoint_id}", headers=tenant.auth)).json()
    assert got["previous_secret_expires_at"] is None
    row = await _raw_row(api, endpoint_id)
    assert all(s not in str(v) for v in row.values() for s in (old, new))


async def test_rotation_without_body_keeps_the_old_secret_for_24_hours(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    created = await _create(api, tenant)
    r = await api.http.post(f"{PATH}/{created['id']}/rotate-secret", headers=tenant.auth)
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    clock.advance(86_399)
    assert await _delivery_secrets(api, tenant, created["id"]) == (new, created["secret"])
    clock.advance(2)
    assert await _delivery_secrets(api, tenant, created["id"]) == (new,)


async def test_zero_grace_drops_the_old_secret_at_once(api: Api) -> None:
    tenant = await api.tenant()
    created = await _create(api, tenant)
    r = await api.http.post(
        f"{PATH}/{created['id']}/rotate-secret", json={"grace_seconds": 0}, headers=tenant.auth
    )
    assert await _delivery_secrets(api, tenant, created["id"]) == (r.json()["secret"],)


async def test_delete_removes_the_endpoint(api: Api) -> None:
    tenant = await api.tenant()
    endpoint = await _create(api, tenant)
    r = await api.http.delete(f"{PATH}/{endpoint['id']}", headers=tenant.auth)
    assert r.status_code == 204
    assert (await api.http.get(f"{PATH}/{endpoint['id']}", headers=tenant.auth)).status_code == 404
    assert (await api.http.delete(f"{PATH}/{endpoint['id']}", headers=tenant.auth)).status_code == (
        404
    )


async def test_user_keys_may_not_manage_endpoints(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    r = await api.http.post(PATH, json={"url": PUBLIC_URL}, headers={"X-API-Key": key})
    assert r.status_code == 403


# -- the failure policy ---------------------------------------------------------------------

FAIL = Outcome(OutcomeKind.RETRY, response_code=503, error="HTTP 503")
GONE = Outcome(OutcomeKind.FAILED, response_code=410, error="HTTP 410", disable_endpoint=True)
OK = Outcome(OutcomeKind.DELIVERED, response_code=200)
POLICY = DisablePolicy(after_seconds=1000, min_failures=3)


async def _record(api: Api, tenant: Tenant, endpoint_id: str, outcome: Outcome) -> bool:
    assert api.app is not None
    async with _db(api).session() as session:
        disabled = await record_outcome(
            session,
            api.app.state.bus,
            tenant.id,
            endpoint_id,
            outcome,
            utcnow(),
            policy=POLICY,
        )
        await session.commit()
    return disabled


async def _state(api: Api, tenant: Tenant, endpoint_id: str) -> dict[str, Any]:
    r = await api.http.get(f"{PATH}/{endpoint_id}", headers=tenant.auth)
    return dict(r.json())


async def test_a_410_disables_at_once_and_reports_it_once(api: Api) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    assert await _record(api, tenant, endpoint_id, GONE) is True
    assert await _record(api, tenant, endpoint_id, GONE) is False
    state = await _state(api, tenant, endpoint_id)
    assert state["disabled"] is True and "410" in state["disabled_reason"]
    assert await _delivery_secrets(api, tenant, endpoint_id) is None


async def test_continuous_failure_for_the_configured_time_disables(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    started = (await _state(api, tenant, endpoint_id))["failing_since"]
    clock.advance(500)
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    clock.advance(499)
    # Three failures, but the run is 999 s old: not yet.
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    state = await _state(api, tenant, endpoint_id)
    assert (state["failing_since"], state["failure_count"], state["disabled"]) == (
        started,
        3,
        False,
    )
    clock.advance(1)
    assert await _record(api, tenant, endpoint_id, FAIL) is True
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    state = await _state(api, tenant, endpoint_id)
    assert state["disabled"] is True and "failed every attempt" in state["disabled_reason"]


async def test_a_long_run_with_too_few_failures_does_not_disable(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    clock.advance(5000)
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    assert (await _state(api, tenant, endpoint_id))["disabled"] is False
    assert await _record(api, tenant, endpoint_id, FAIL) is True


async def test_success_clears_the_failure_run(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    for _ in range(2):
        await _record(api, tenant, endpoint_id, FAIL)
    assert (await _state(api, tenant, endpoint_id))["failure_count"] == 2
    assert await _record(api, tenant, endpoint_id, OK) is False
    state = await _state(api, tenant, endpoint_id)
    assert (state["failing_since"], state["failure_count"]) == (None, 0)
    # A new run starts from scratch: it would have disabled without the success.
    clock.advance(2000)
    assert await _record(api, tenant, endpoint_id, FAIL) is False
    assert (await _state(api, tenant, endpoint_id))["failing_since"] is not None


async def test_reenabling_by_patch_clears_the_failure_state(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    for _ in range(2):
        assert await _record(api, tenant, endpoint_id, FAIL) is False
        clock.advance(600)
    assert await _record(api, tenant, endpoint_id, FAIL) is True
    r = await api.http.patch(f"{PATH}/{endpoint_id}", json={"disabled": False}, headers=tenant.auth)
    assert r.status_code == 200, r.text
    state = r.json()
    assert (
        state["disabled"],
        state["disabled_reason"],
        state["failing_since"],
        state["failure_count"],
    ) == (False, None, None, 0)
    assert await _delivery_secrets(api, tenant, endpoint_id) is not None


async def test_disabling_by_patch_excludes_from_delivery(api: Api) -> None:
    tenant = await api.tenant()
    endpoint_id = (await _create(api, tenant))["id"]
    r = await api.http.patch(f"{PATH}/{endpoint_id}", json={"disabled": True}, headers=tenant.auth)
    assert r.json()["disabled"] is True and r.json()["disabled_reason"]
    assert await _delivery_secrets(api, tenant, endpoint_id) is None
    # Repeating `disabled: false` on an enabled, failing endpoint keeps its run.
    await api.http.patch(f"{PATH}/{endpoint_id}", json={"disabled": False}, headers=tenant.auth)
    await _record(api, tenant, endpoint_id, FAIL)
    await api.http.patch(f"{PATH}/{endpoint_id}", json={"disabled": False}, headers=tenant.auth)
    assert (await _state(api, tenant, endpoint_id))["failure_count"] == 1


def test_disable_policy_comes_from_the_settings() -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///:memory:",
        WEBHOOK_DISABLE_AFTER_SECONDS=60,
        WEBHOOK_DISABLE_MIN_FAILURES=2,
    )
    assert DisablePolicy.from_settings(settings) == DisablePolicy(60, 2)
    assert DisablePolicy.from_settings(make_settings("sqlite+aiosqlite:///:memory:")) == (
        DisablePolicy(432_000, 5)
    )
