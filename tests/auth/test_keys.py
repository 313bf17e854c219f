"""Keys: always-rotating login, revocation, expiry, scopes, and bcrypt off the hot path."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.auth import authenticator as authenticator_module
from app.auth import repository
from app.auth.authenticator import Authenticator
from app.auth.models import ApiKey
from app.auth.secrets import parse_key
from app.core.clock import ManualClock, utcnow
from tests.support.api import Api, bearer


async def test_login_twice_revokes_the_first_key_at_once(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    first = await api.login(tenant, user["id"])
    assert await api.status_with(first, "/api/v1/auth/me") == 200
    second = await api.login(tenant, user["id"])
    assert first != second
    logout_first = await api.http.post("/api/v1/auth/logout", headers=bearer(first))
    assert logout_first.status_code == 401
    assert logout_first.headers["content-type"] == "application/problem+json"
    assert "revoked" in logout_first.json()["detail"]


async def test_user_key_is_accepted_then_refused_after_relogin_even_when_cached(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    first = await api.login(tenant, user["id"])
    # Warm the verified-key cache, so only revocation (not a re-read) can refuse it.
    for _ in range(3):
        assert await api.status_with(first, "/api/v1/auth/me") == 200
    await api.login(tenant, user["id"])
    assert await api.status_with(first, "/api/v1/auth/me") == 401


async def test_auth_me_describes_the_caller(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"], scopes=["rooms:read", "messages:read"])
    me = (await api.http.get("/api/v1/auth/me", headers=bearer(key))).json()
    assert me["kind"] == "user"
    assert me["user_id"] == user["id"]
    assert me["client_id"] == tenant.id
    assert me["scopes"] == ["messages:read", "rooms:read"]
    master = (await api.http.get("/api/v1/auth/me", headers=tenant.auth)).json()
    assert master["kind"] == "master" and master["user_id"] is None


async def test_login_by_external_id_with_scopes_and_ttl(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant, external_id="crm-42", display_name="Ada")
    r = await api.http.post(
        "/api/v1/auth/login",
        json={"external_id": "crm-42", "scopes": ["rooms:read"], "ttl_seconds": 3600},
        headers=tenant.auth,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["user"]["id"] == user["id"]
    assert body["scopes"] == ["rooms:read"]
    assert body["expires_at"] is not None


async def test_login_needs_exactly_one_identity(api: Api) -> None:
    tenant = await api.tenant()
    for body in ({}, {"user_id": "a", "external_id": "b"}):
        r = await api.http.post("/api/v1/auth/login", json=body, headers=tenant.auth)
        assert r.status_code == 422


async def test_login_for_an_unknown_user_is_404(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post("/api/v1/auth/login", json={"user_id": "nope"}, headers=tenant.auth)
    assert r.status_code == 404


async def test_expired_user_key_is_refused(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"], ttl_seconds=1)
    assert await api.status_with(key, "/api/v1/auth/me") == 200
    clock.advance(1)
    r = await api.http.get("/api/v1/auth/me", headers=bearer(key))
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


async def test_logout_revokes_the_presented_key(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    assert (await api.http.post("/api/v1/auth/logout", headers=bearer(key))).status_code == 204
    assert (await api.http.post("/api/v1/auth/logout", headers=bearer(key))).status_code == 401


async def test_logout_needs_a_user_key(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post("/api/v1/auth/logout", headers=tenant.auth)
    assert r.status_code == 403


async def test_user_key_cannot_act_as_master(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    for method, path in [
        ("GET", "/api/v1/clients/me"),
        ("PATCH", "/api/v1/clients/me"),
        ("POST", "/api/v1/clients/me/rotate-key"),
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/api/v1/keys"),
        ("DELETE", f"/api/v1/users/{user['id']}"),
    ]:
        r = await api.http.request(method, path, headers=bearer(key), json={})
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"


async def test_keys_list_never_shows_secrets_and_revocation_works(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    listing = await api.http.get("/api/v1/keys", headers=tenant.auth)
    assert listing.status_code == 200
    text = listing.text
    assert "secret" not in text and "$2b$" not in text
    assert tenant.master_key.split("_", 2)[2] not in text and key.split("_", 2)[2] not in text
    rows = listing.json()["data"]
    assert {r["kind"] for r in rows} == {"master", "user"}
    user_key = next(r for r in rows if r["kind"] == "user")
    assert user_key["user_id"] == user["id"]
    assert set(user_key) == {
        "id",
        "kind",
        "user_id",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "device_id",
    }
    assert user_key["device_id"] == "default"
    assert (
        await api.http.delete(f"/api/v1/keys/{user_key['id']}", headers=tenant.auth)
    ).status_code == 204
    assert (await api.http.post("/api/v1/auth/logout", headers=bearer(key))).status_code == 401


async def test_last_master_key_cannot_be_revoked(api: Api) -> None:
    tenant = await api.tenant()
    rows = (await api.http.get("/api/v1/keys", headers=tenant.auth)).json()["data"]
    master = next(r for r in rows if r["kind"] == "master")
    r = await api.http.delete(f"/api/v1/keys/{master['id']}", headers=tenant.auth)
    assert r.status_code == 409


async def test_last_used_is_written_to_the_database_and_listed(
    api: Api, clock: ManualClock
) -> None:
    assert api.app is not None
    authenticator: Authenticator = api.app.state.authenticator
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    parts = parse_key(key)
    assert parts is not None
    used_at = utcnow()
    assert await api.status_with(key, "/api/v1/auth/me") == 200
    clock.advance(10)
    await authenticator.flush_last_used()
    # Nothing buffered any more: what follows can only come from the database.
    assert authenticator.pending_last_used(parts.key_id) is None
    async with api.app.state.db.read_session() as session:
        row = await session.get(ApiKey, parts.key_id)
    assert row is not None and row.last_used_at == used_at
    listed = await api.http.get("/api/v1/keys", params={"user_id": user["id"]}, headers=tenant.auth)
    assert listed.status_code == 200
    [entry] = [k for k in listed.json()["data"] if k["revoked_at"] is None]
    assert entry["id"] == parts.key_id
    assert datetime.fromisoformat(entry["last_used_at"]) == used_at


async def test_rotation_with_grace_keeps_the_old_master_for_exactly_the_grace(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    r = await api.http.post(
        "/api/v1/clients/me/rotate-key", json={"grace_seconds": 2}, headers=tenant.auth
    )
    assert r.status_code == 200
    new_key = r.json()["master_key"]
    assert await api.status_with(tenant.master_key) == 200
    clock.advance(1)
    assert await api.status_with(tenant.master_key) == 200
    clock.advance(0.999)
    assert await api.status_with(tenant.master_key) == 200
    clock.advance(0.002)
    assert await api.status_with(tenant.master_key) == 401
    assert await api.status_with(new_key) == 200


async def test_rotation_without_grace_kills_the_old_master_at_once(api: Api) -> None:
    tenant = await api.tenant()
    assert await api.status_with(tenant.master_key) == 200
    r = await api.http.post("/api/v1/clients/me/rotate-key", headers=tenant.auth)
    assert r.status_code == 200
    assert await api.status_with(tenant.master_key) == 401
    assert await api.status_with(r.json()["master_key"]) == 200


@pytest.mark.parametrize("key", ["", "garbage", "ck_short_x", "ck_0123456789abcdef_nosuchsecret"])
async def test_bad_or_unknown_keys_are_401_problems(api: Api, key: str) -> None:
    r = await api.http.get("/api/v1/clients/me", headers={"X-API-Key": key} if key else {})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_x_api_key_header_is_accepted(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.get("/api/v1/clients/me", headers={"X-API-Key": tenant.master_key})
    assert r.status_code == 200


async def test_steady_state_and_unknown_ids_cost_no_bcrypt(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await api.tenant()
    calls = 0
    real = authenticator_module.verify_secret

    def counting(secret: str, secret_hash: str) -> bool:
        nonlocal calls
        calls += 1
        return real(secret, secret_hash)

    monkeypatch.setattr(authenticator_module, "verify_secret", counting)
    for _ in range(5):
        assert await api.status_with(tenant.master_key) == 200
    assert calls <= 1
    before = calls
    assert await api.status_with("ck_fedcba9876543210_whatever") == 401
    assert calls == before


async def test_many_wrong_secrets_for_one_key_id_are_rate_limited(api: Api) -> None:
    tenant = await api.tenant()
    assert await api.status_with(tenant.master_key) == 200  # verified and cached before the attack
    key_id = tenant.master_key.split("_")[1]
    statuses = [await api.status_with(f"ck_{key_id}_wrong{i}") for i in range(12)]
    # Every verify counts, the one that warmed the cache too (it is counted before it runs).
    assert statuses == [401] * 9 + [429] * 3
    r = await api.http.get("/api/v1/clients/me", headers=bearer(f"ck_{key_id}_wrong"))
    assert r.headers["retry-after"]
    assert "10 per minute" in r.json()["detail"], r.json()  # the limit and its window
    assert await api.status_with(tenant.master_key) == 200


async def test_a_key_issued_by_login_costs_no_bcrypt_on_its_first_use(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # login -> connect is every client's first move: this process made the secret, so it
    # need not hash it again to believe it (bcrypt is most of a socket connect's CPU).
    tenant = await api.tenant()
    user = await api.user(tenant)
    calls = 0
    real = authenticator_module.verify_secret

    def counting(secret: str, secret_hash: str) -> bool:
        nonlocal calls
        calls += 1
        return real(secret, secret_hash)

    monkeypatch.setattr(authenticator_module, "verify_secret", counting)
    key = await api.login(tenant, user["id"])
    assert await api.status_with(key, "/api/v1/auth/me") == 200
    assert calls == 0
    # Only the exact string issued is believed: a wrong secret for the same key id is hashed.
    key_id = parse_key(key)
    assert key_id is not None
    assert await api.status_with(f"ck_{key_id.key_id}_wrong", "/api/v1/auth/me") == 401
    assert calls == 1


async def test_a_key_issued_by_login_and_revoked_before_its_first_use_is_refused(
    api: Api,
) -> None:
    # The issued key is remembered unchecked: its first use still re-reads the row, so a
    # revocation this process never heard of (written straight to the database) wins.
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    parts = parse_key(key)
    assert parts is not None and api.app is not None
    async with api.app.state.db.session() as session:
        await repository.revoke_user_keys(session, tenant.id, user["id"], utcnow())
        await session.commit()
    assert await api.status_with(key, "/api/v1/auth/me") == 401
