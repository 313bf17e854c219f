"""Bad numbers and JSON never reach the database or the bus: a clear 422, never a 500.

Every integer fits the databases (signed 64-bit), every metadata document serialises with
orjson, and a committed write is answered as such even when announcing it fails.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from app.core.bounds import INT64_MAX, SEQ_MAX
from app.core.broadcast import RedisBroadcast
from app.realtime.events import room_target
from tests.support.api import Api, Tenant
from tests.support.processes import free_port

PROBLEM = "application/problem+json"


async def _room(api: Api) -> tuple[Tenant, str]:
    tenant = await api.tenant()
    room = await api.room(tenant, type="group")
    return tenant, str(room["id"])


def _assert_422(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "raw_metadata",
    [
        '{"n": 18446744073709551616}',  # 2^64: orjson cannot serialise it
        '{"n": 9223372036854775808}',  # 2^63: beyond signed 64-bit
        '{"n": NaN}',
        '{"n": Infinity}',
        '{"n": 1e400}',  # overflows to infinity in Python's json
        '{"deep": ' + "[" * 40 + "]" * 40 + "}",
        '{"s": "a\\ud800b"}',  # a lone surrogate: valid JSON, not valid Unicode
        '{"a\\udfff": 1}',
    ],
)
async def test_message_metadata_that_orjson_cannot_carry_is_refused(
    api: Api, raw_metadata: str
) -> None:
    tenant, room_id = await _room(api)
    body = '{"content": "hi", "metadata": ' + raw_metadata + "}"
    headers = {**tenant.auth, "content-type": "application/json"}
    created = await api.http.post(
        f"/api/v1/rooms/{room_id}/messages", content=body, headers=headers
    )
    _assert_422(created)
    sent = await api.send(tenant, room_id, "kept")
    assert sent.status_code == 201
    patched = await api.http.patch(
        f"/api/v1/rooms/{room_id}/messages/{sent.json()['id']}",
        content='{"metadata": ' + raw_metadata + "}",
        headers=headers,
    )
    _assert_422(patched)
    listed = await api.http.get(f"/api/v1/rooms/{room_id}/messages", headers=tenant.auth)
    assert [m["content"] for m in listed.json()["data"]] == ["kept"]


async def test_metadata_at_the_64_bit_limits_is_stored_and_announced(api: Api) -> None:
    tenant, room_id = await _room(api)
    events = await api.capture(tenant, room_target(room_id))
    metadata = {"max": INT64_MAX, "min": -(2**63), "f": 1.5, "nested": {"a": [1, None, True]}}
    sent = await api.send(tenant, room_id, "edge", metadata=metadata)
    assert sent.status_code == 201, sent.text
    assert sent.json()["metadata"] == metadata
    assert [e.data["metadata"] for e in events] == [metadata]


@pytest.mark.parametrize("path", ["/api/v1/rooms", "/api/v1/users"])
async def test_room_and_user_metadata_with_nan_is_refused(api: Api, path: str) -> None:
    tenant = await api.tenant()
    body = (
        '{"external_id": "x1", "metadata": {"n": NaN}}'
        if "users" in path
        else ('{"metadata": {"n": NaN}}')
    )
    response = await api.http.post(
        path, content=body, headers={**tenant.auth, "content-type": "application/json"}
    )
    _assert_422(response)


@pytest.mark.parametrize("param", ["after_seq", "before_seq"])
async def test_seq_query_beyond_the_column_is_a_422_not_a_500(api: Api, param: str) -> None:
    tenant, room_id = await _room(api)
    url = f"/api/v1/rooms/{room_id}/messages"
    for beyond in (2**31, 2**63):
        _assert_422(await api.http.get(url, params={param: beyond}, headers=tenant.auth))
    at_limit = await api.http.get(url, params={param: SEQ_MAX}, headers=tenant.auth)
    assert at_limit.status_code == 200, at_limit.text


async def test_read_marker_beyond_the_column_is_a_422(api: Api) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    room = await api.room(tenant, key=key)
    response = await api.http.post(
        f"/api/v1/rooms/{room['id']}/read",
        json={"seq": SEQ_MAX + 1},
        headers={"Authorization": f"Bearer {key}"},
    )
    _assert_422(response)


@pytest.mark.parametrize("seconds", [0, 10 * 365 * 86_400 + 1, 2**63, 10**30])
async def test_room_inactivity_setting_out_of_bounds_is_refused(api: Api, seconds: int) -> None:
    tenant = await api.tenant()
    response = await api.http.patch(
        "/api/v1/clients/me",
        json={"room_inactivity_seconds": {"support": seconds}},
        headers=tenant.auth,
    )
    _assert_422(response)
    me = await api.http.get("/api/v1/clients/me", headers=tenant.auth)
    assert me.json()["settings"]["room_inactivity_seconds"]["support"] == 7 * 86_400


async def test_grace_seconds_beyond_bounds_is_refused(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.http.post(
        "/api/v1/clients/me/rotate-key", json={"grace_seconds": 2**64}, headers=tenant.auth
    )
    _assert_422(response)


async def test_a_committed_message_is_answered_even_when_publishing_fails(api: Api) -> None:
    tenant, room_id = await _room(api)
    assert api.app is not None
    bus = api.app.state.bus
    working = bus.broadcast
    # A real Redis client on a port nobody listens on: publishing fails like a broker outage.
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    bus.broadcast = RedisBroadcast(dead, "dead:")
    try:
        sent = await api.send(tenant, room_id, "stored anyway")
        assert sent.status_code == 201, sent.text
        edited = await api.http.patch(
            f"/api/v1/rooms/{room_id}/messages/{sent.json()['id']}",
            json={"content": "edited anyway"},
            headers=tenant.auth,
        )
        assert edited.status_code == 200, edited.text
    finally:
        bus.broadcast = working
        await dead.aclose()
    listed = await api.http.get(f"/api/v1/rooms/{room_id}/messages", headers=tenant.auth)
    assert [m["content"] for m in listed.json()["data"]] == ["edited anyway"]


async def test_a_service_refusal_422_has_the_validation_problem_shape(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.http.post(
        "/api/v1/rooms", json={"member_ids": ["no-such-user"]}, headers=tenant.auth
    )
    _assert_422(response)
    errors = response.json()["errors"]
    assert len(errors) == 1 and "no-such-user" in errors[0]["msg"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/clients/me/rotate-key", {"grace_seconds": False}),
        ("/api/v1/clients/me/rotate-key", {"grace_seconds": "5"}),
        ("/api/v1/auth/login", {"external_id": "u-1", "ttl_seconds": True}),
    ],
)
async def test_a_boolean_or_string_is_not_taken_for_an_integer(
    api: Api, path: str, body: dict[str, Any]
) -> None:
    # Lax validation would read `false` as 0 and rotate the master key for real.
    tenant = await api.tenant()
    await api.user(tenant, external_id="u-1")
    response = await api.http.post(path, json=body, headers=tenant.auth)
    _assert_422(response)
    assert await api.status_with(tenant.master_key) == 200


async def test_a_boolean_is_not_taken_for_an_inactivity_threshold(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.http.patch(
        "/api/v1/clients/me",
        json={"room_inactivity_seconds": {"support": True}},
        headers=tenant.auth,
    )
    _assert_422(response)
