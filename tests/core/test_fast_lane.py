"""The fast lane (app/api/fast_lane.py) answers the direct routes' well-formed requests in
one layer: the same status, body shape and headers as the full stack, the same access log
line and metrics, the app's problem answers for errors; everything else goes down the full
stack and is answered as it always was."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.fast_lane import FastLane
from app.core.config import Settings
from app.main import create_app
from app.notifications import service as notification_service
from tests.conftest import app_client, make_settings
from tests.support.api import Api, Tenant

SEND = "/api/v1/notifications/send"
# Headers whose values differ between any two answers.
_VARYING = {"date", "content-length", "x-request-id", "ratelimit-remaining", "ratelimit-reset"}


@pytest.fixture
async def lane_api(db_url: str) -> AsyncIterator[Api]:
    app = create_app(make_settings(db_url), run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def _send_body(api: Api, tenant: Tenant) -> dict[str, Any]:
    user = await api.user(tenant)
    return {
        "recipients": [{"user_id": user["id"]}],
        "channels": ["websocket"],
        "websocket": {"event": "lane.probe", "data": {"n": 1}},
    }


def _requests_to(text: str, route: str, status: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "chatapi_http_requests_total"
        and s.labels.get("route") == route
        and s.labels.get("status") == status
    )


def _lane_of(api: Api) -> FastLane:
    assert api.app is not None
    lane = getattr(api.app, "fast_lane", None)
    assert isinstance(lane, FastLane)
    return lane


async def test_the_lane_takes_both_sends(lane_api: Api) -> None:
    assert sorted(_lane_of(lane_api).templates) == [
        ("POST", "/api/v1/notifications/send"),
        ("POST", "/api/v1/rooms/{room_id}/messages"),
    ]


async def test_a_lane_answer_matches_the_full_stacks(
    lane_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await lane_api.tenant()
    body = await _send_body(lane_api, tenant)
    lane = _lane_of(lane_api)
    # `match` is what routes a request to the lane: count its verdicts.
    verdicts: list[bool] = []
    match = lane.match

    def counted_match(scope: Any) -> Any:
        found = match(scope)
        if scope["type"] == "http" and scope["path"] == SEND:
            verdicts.append(found is not None)
        return found

    monkeypatch.setattr(lane, "match", counted_match)

    fast = await lane_api.http.post(
        SEND, json=body, headers={**tenant.auth, "x-request-id": "req-fast-1"}
    )
    # A query string sends the same request down the full stack (which ignores `x`).
    full = await lane_api.http.post(
        f"{SEND}?x=1", json=body, headers={**tenant.auth, "x-request-id": "req-full-1"}
    )
    assert verdicts == [True, False]
    assert fast.status_code == full.status_code == 202, (fast.text, full.text)
    assert set(fast.json()) == set(full.json())
    assert fast.headers["x-request-id"] == "req-fast-1"
    assert full.headers["x-request-id"] == "req-full-1"
    assert {k for k in fast.headers if k not in _VARYING} == {
        k for k in full.headers if k not in _VARYING
    }
    for name in ("content-type", "ratelimit-limit"):
        assert fast.headers[name] == full.headers[name]
    assert int(fast.headers["ratelimit-remaining"]) == int(full.headers["ratelimit-remaining"]) + 1


async def test_the_lane_logs_and_counts_each_request(
    lane_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await lane_api.tenant()
    body = await _send_body(lane_api, tenant)
    room = await lane_api.room(tenant, name="lane", type="group")
    before = (await lane_api.http.get("/metrics")).text
    with caplog.at_level(logging.INFO, logger="chatapi.request"):
        sent = await lane_api.http.post(SEND, json=body, headers=tenant.auth)
        posted = await lane_api.send(tenant, room["id"], "hello")
    assert (sent.status_code, posted.status_code) == (202, 201), (sent.text, posted.text)
    lines = [r for r in caplog.records if r.name == "chatapi.request"]
    logged = {(r.__dict__["method"], r.__dict__["path"], r.__dict__["status"]) for r in lines}
    assert ("POST", SEND, 202) in logged
    assert ("POST", f"/api/v1/rooms/{room['id']}/messages", 201) in logged
    ids = {r.__dict__["request_id"] for r in lines}
    assert sent.headers["x-request-id"] in ids and posted.headers["x-request-id"] in ids
    after = (await lane_api.http.get("/metrics")).text
    assert _requests_to(after, SEND, "202") - _requests_to(before, SEND, "202") == 1
    template = "/api/v1/rooms/{room_id}/messages"
    assert _requests_to(after, template, "201") - _requests_to(before, template, "201") == 1


async def test_malformed_and_keyless_requests_get_the_full_stacks_answers(lane_api: Api) -> None:
    tenant = await lane_api.tenant()
    body = await _send_body(lane_api, tenant)
    headers = {**tenant.auth, "content-type": "application/json"}
    # Keyless, even with a malformed body: the 401 before the body is read.
    keyless = await lane_api.http.post(
        SEND, content=b"{nope", headers={"content-type": "application/json"}
    )
    assert keyless.status_code == 401
    # Invalid JSON, a body off the schema, a header out of bounds: FastAPI's 422s.
    broken = await lane_api.http.post(SEND, content=b"{nope", headers=headers)
    assert broken.status_code == 422
    assert broken.headers["content-type"] == "application/problem+json"
    off_schema = await lane_api.http.post(SEND, json={"channels": []}, headers=tenant.auth)
    assert off_schema.status_code == 422
    assert {e["loc"][0] for e in off_schema.json()["errors"]} == {"body"}
    long_key = await lane_api.http.post(
        SEND, json=body, headers={**tenant.auth, "idempotency-key": "k" * 256}
    )
    assert long_key.status_code == 422
    assert long_key.json()["errors"][0]["loc"] == ["header", "idempotency-key"]
    # Another tenant's room is a 404 problem from the lane too.
    other = await lane_api.tenant()
    room = await lane_api.room(other, name="theirs", type="group")
    foreign = await lane_api.send(tenant, room["id"], "hello")
    assert foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert "x-request-id" in foreign.headers and "ratelimit-limit" in foreign.headers


async def _raw_post(
    app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One POST straight through the ASGI interface, its body in `chunks`."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a client that sent everything waits for the answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    total = sum(len(c) for c in chunks)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t"), (b"content-length", str(total).encode()), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


async def test_a_body_in_chunks_is_replayed_to_the_full_stack(lane_api: Api) -> None:
    import orjson

    tenant = await lane_api.tenant()
    raw = orjson.dumps(await _send_body(lane_api, tenant))
    headers = [
        (b"authorization", f"Bearer {tenant.master_key}".encode()),
        (b"content-type", b"application/json"),
    ]
    status, answer_headers, body = await _raw_post(
        lane_api.app, SEND, [raw[:10], raw[10:]], headers
    )
    assert status == 202, body
    assert b"x-request-id" in answer_headers
    got = await lane_api.http.get(
        f"/api/v1/notifications/{orjson.loads(body)['id']}", headers=tenant.auth
    )
    assert got.status_code == 200


async def test_a_body_that_never_comes_is_a_408(lane_api: Api) -> None:
    tenant = await lane_api.tenant()
    assert lane_api.app is not None
    slow = FastLane(
        lane_api.app,
        lane_api.app.full_stack,  # type: ignore[attr-defined]
        [],
        max_body_bytes=1024,
        body_timeout=0.05,
    )
    slow.lanes = _lane_of(lane_api).lanes
    scope_headers = [
        (b"authorization", f"Bearer {tenant.master_key}".encode()),
        (b"content-type", b"application/json"),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        found = slow.match(scope)
        assert found is not None
        await slow(scope, receive, send, *found)

    status, headers, body = await _raw_post(app, SEND, [], scope_headers)
    assert status == 408, body
    assert headers[b"connection"] == b"close"
    assert b"did not arrive" in body


async def test_an_unexpected_error_in_the_lane_is_a_500_problem_reported_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    captured: list[BaseException] = []
    import sentry_sdk

    monkeypatch.setattr(sentry_sdk, "capture_exception", lambda exc=None: captured.append(exc))

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("lane-probe-error")

    settings: Settings = make_settings(db_url)
    app = create_app(settings, run_embedded_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            api = Api(http, app=app)
            tenant = await api.tenant()
            body = await _send_body(api, tenant)
            monkeypatch.setattr(notification_service, "send", broken)
            response = await http.post(SEND, json=body, headers=tenant.auth)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/internal-error")
    assert "lane-probe-error" not in response.text
    assert [str(e) for e in captured] == ["lane-probe-error"]
