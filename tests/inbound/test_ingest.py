"""POST /webhooks/{client_slug}/{name}: each signature scheme, refusals, dedupe, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.core.clock import ManualClock
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import count_events, events, make_hook, post
from tests.inbound.test_processing import GITHUB_TEMPLATE, github_event, messages_of, settled
from tests.support.api import Api
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process

BODY = signing.dumps({"id": "evt_1", "type": "ticket.created", "ticket": {"id": 7}})


async def test_standard_webhooks_signed_request_is_stored_with_its_id(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, name="helpdesk")
    assert hook["path"] == f"/api/v1/webhooks/{tenant.slug}/helpdesk"
    headers = signing.standard_webhooks(hook["secret"], BODY, clock.now(), "msg_abc")
    r = await post(api, hook["url"], BODY, headers)
    assert r.status_code == 202, r.text
    assert r.json() == {"id": r.json()["id"], "status": "pending", "duplicate": False}
    [event] = await events(api, tenant, hook["id"])
    assert event["id"] == r.json()["id"]
    assert event["dedupe_key"] == "msg_abc"
    assert event["body"] == BODY.decode()
    assert event["headers"]["webhook-id"] == "msg_abc"
    assert "webhook-signature" not in event["headers"]


async def test_standard_webhooks_accepts_any_of_several_signatures(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant)
    headers = signing.standard_webhooks(hook["secret"], BODY, clock.now())
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"] + " v2,zzz"
    assert (await post(api, hook["url"], BODY, headers)).status_code == 202


async def test_github_signed_delivery_is_stored_with_the_delivery_id(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, name="gh", scheme="github")
    body = signing.dumps(signing.github_issue(1001, "Crash"))
    headers = signing.github(hook["secret"], body, delivery="d-1")
    r = await post(api, hook["url"], body, headers)
    assert r.status_code == 202, r.text
    [event] = await events(api, tenant, hook["id"])
    assert event["dedupe_key"] == "d-1"
    assert event["headers"]["x-github-event"] == "issues"


async def test_stripe_signed_event_is_stored_with_the_body_id(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, name="stripe", scheme="stripe")
    headers = signing.stripe(hook["secret"], BODY, clock.now())
    assert (await post(api, hook["url"], BODY, headers)).status_code == 202
    [event] = await events(api, tenant, hook["id"])
    assert event["dedupe_key"] == "evt_1"


@pytest.mark.parametrize("encoding", ["hex", "base64"])
async def test_hmac_sha256_uses_the_configured_header_encoding_and_dedupe_field(
    api: Api, encoding: str
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        name="shop",
        scheme="hmac-sha256",
        signature={
            "header": "X-Shop-Signature",
            "encoding": encoding,
            "prefix": "sha256=",
            "dedupe_field": "ticket.id",
        },
    )
    signature = signing.plain_hmac(hook["secret"], BODY, encoding=encoding, prefix="sha256=")
    r = await post(api, hook["url"], BODY, {"X-Shop-Signature": signature})
    assert r.status_code == 202, r.text
    [event] = await events(api, tenant, hook["id"])
    assert event["dedupe_key"] == "7"


async def test_hmac_sha256_dedupes_by_the_configured_header(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(
        api, tenant, scheme="hmac-sha256", signature={"dedupe_header": "X-Delivery"}
    )
    headers = {"X-Signature": signing.plain_hmac(hook["secret"], BODY), "X-Delivery": "abc"}
    first = await post(api, hook["url"], BODY, headers)
    again = await post(api, hook["url"], BODY, headers)
    assert again.json() == {"id": first.json()["id"], "status": "pending", "duplicate": True}
    assert await count_events(api, hook["id"]) == 1


def _bad_requests(scheme: str, secret: str, now: Any) -> dict[str, tuple[bytes, dict[str, str]]]:
    """name -> (body, headers) that must be refused, for `scheme`."""
    wrong = "whsec_" + "A" * 32
    stale = now.replace(year=now.year - 1)
    tampered = BODY.replace(b"7", b"8")
    if scheme == "standard-webhooks":
        good = signing.standard_webhooks(secret, BODY, now)
        return {
            "wrong secret": (BODY, signing.standard_webhooks(wrong, BODY, now)),
            "tampered body": (tampered, good),
            "missing signature": (
                BODY,
                {k: v for k, v in good.items() if k != "webhook-signature"},
            ),
            "missing id": (BODY, {k: v for k, v in good.items() if k != "webhook-id"}),
            "stale timestamp": (BODY, signing.standard_webhooks(secret, BODY, stale)),
            "no headers": (BODY, {}),
        }
    if scheme == "github":
        good = signing.github(secret, BODY)
        return {
            "wrong secret": (BODY, signing.github(wrong, BODY)),
            "tampered body": (tampered, good),
            "missing signature": (BODY, {"X-GitHub-Delivery": "x"}),
            "not sha256": (BODY, {**good, "X-Hub-Signature-256": "sha1=abcd"}),
            "no headers": (BODY, {}),
        }
    if scheme == "stripe":
        good = signing.stripe(secret, BODY, now)
        return {
            "wrong secret": (BODY, signing.stripe(wrong, BODY, now)),
            "tampered body": (tampered, good),
            "stale timestamp": (BODY, signing.stripe(secret, BODY, stale)),
            "no v1": (BODY, {"Stripe-Signature": f"t={int(now.timestamp())}"}),
            "no headers": (BODY, {}),
        }
    return {
        "wrong secret": (BODY, {"X-Signature": signing.plain_hmac(wrong, BODY)}),
        "tampered body": (tampered, {"X-Signature": signing.plain_hmac(secret, BODY)}),
        "not hex": (BODY, {"X-Signature": "zz"}),
        "no headers": (BODY, {}),
    }


@pytest.mark.parametrize("scheme", ["standard-webhooks", "github", "stripe", "hmac-sha256"])
async def test_unsigned_or_badly_signed_requests_are_401_and_store_nothing(
    api: Api, clock: ManualClock, scheme: str
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme=scheme)
    for case, (body, headers) in _bad_requests(scheme, hook["secret"], clock.now()).items():
        r = await post(api, hook["url"], body, headers)
        assert r.status_code == 401, f"{case}: {r.text}"
        assert r.headers["content-type"] == "application/problem+json", case
        assert r.json()["status"] == 401, case
    assert await count_events(api, hook["id"]) == 0


async def test_timestamp_tolerance_is_configurable_per_hook(api: Api, clock: ManualClock) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, signature={"tolerance_seconds": 30})
    signed_at = clock.now()
    headers = signing.standard_webhooks(hook["secret"], BODY, signed_at)
    clock.advance(31)
    assert (await post(api, hook["url"], BODY, headers)).status_code == 401
    clock.advance(-2)  # 29 s after signing: within the hook's tolerance
    assert (await post(api, hook["url"], BODY, headers)).status_code == 202
    assert await count_events(api, hook["id"]) == 1


async def test_rotated_secret_old_and_new_verify_during_grace_then_only_new(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github")
    old = hook["secret"]
    r = await api.http.post(
        f"/api/v1/inbound-webhooks/{hook['id']}/rotate-secret",
        json={"grace_seconds": 600},
        headers=tenant.auth,
    )
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != old and new.startswith("whsec_")
    for secret in (old, new):
        assert (await post(api, hook["url"], BODY, signing.github(secret, BODY))).status_code == 202
    clock.advance(601)
    assert (await post(api, hook["url"], BODY, signing.github(old, BODY))).status_code == 401
    assert (await post(api, hook["url"], BODY, signing.github(new, BODY))).status_code == 202
    assert await count_events(api, hook["id"]) == 3


async def test_secret_is_shown_once(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant)
    shown = await api.http.get(f"/api/v1/inbound-webhooks/{hook['id']}", headers=tenant.auth)
    assert shown.json()["secret"] is None
    listed = await api.http.get("/api/v1/inbound-webhooks", headers=tenant.auth)
    assert [h["secret"] for h in listed.json()["data"]] == [None]


async def test_unknown_client_and_unknown_hook_get_the_same_404(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github", name="gh")
    headers = signing.github(hook["secret"], BODY)
    no_client = await post(api, "/api/v1/webhooks/no-such-client/gh", BODY, headers)
    no_hook = await post(api, f"/api/v1/webhooks/{tenant.slug}/no-such-hook", BODY, headers)
    assert no_client.status_code == no_hook.status_code == 404
    strip = lambda r: {k: v for k, v in r.json().items() if k != "instance"}  # noqa: E731
    assert strip(no_client) == strip(no_hook)
    assert no_client.headers["content-type"] == "application/problem+json"


async def test_disabled_hook_is_403_and_stores_nothing(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github")
    r = await api.http.patch(
        f"/api/v1/inbound-webhooks/{hook['id']}", json={"disabled": True}, headers=tenant.auth
    )
    assert r.json()["disabled"] is True
    refused = await post(api, hook["url"], BODY, signing.github(hook["secret"], BODY))
    assert refused.status_code == 403
    assert "disabled" in refused.json()["detail"]
    # Only a holder of the secret learns that: a bad signature is still 401.
    forged = await post(api, hook["url"], BODY, signing.github("whsec_wrong", BODY))
    assert forged.status_code == 401
    assert await count_events(api, hook["id"]) == 0


async def test_body_over_the_limit_is_413_and_stores_nothing(db_url: str) -> None:
    app = create_app(make_settings(db_url, INBOUND_MAX_BODY_BYTES=1000), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, scheme="github")
        big = signing.dumps({"pad": "x" * 1000})
        r = await post(api, hook["url"], big, signing.github(hook["secret"], big))
        assert r.status_code == 413
        assert r.json()["status"] == 413

        async def chunks() -> Any:  # no Content-Length: the limit holds while streaming
            for _ in range(4):
                yield b"x" * 400

        streamed = await http.post(
            hook["url"], content=chunks(), headers={"X-Hub-Signature-256": "sha256=00"}
        )
        assert streamed.status_code == 413
        assert await count_events(api, hook["id"]) == 0


async def test_repeated_delivery_is_202_with_the_first_id_and_stored_once(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github")
    headers = signing.github(hook["secret"], BODY, delivery="same")
    first = await post(api, hook["url"], BODY, headers)
    again = await post(api, hook["url"], BODY, headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert await count_events(api, hook["id"]) == 1


async def test_same_dedupe_key_on_another_hook_is_a_new_event(api: Api) -> None:
    tenant = await api.tenant()
    a = await make_hook(api, tenant, scheme="github", name="a")
    b = await make_hook(api, tenant, scheme="github", name="b")
    for hook in (a, b):
        r = await post(api, hook["url"], BODY, signing.github(hook["secret"], BODY, delivery="d"))
        assert r.json()["duplicate"] is False


async def test_simultaneous_identical_deliveries_store_and_process_one_event_on_postgresql(
    pg_url: str,
) -> None:
    # A real uvicorn server (over TCP) with its embedded worker: the requests race through
    # real connections, and whatever processing they trigger happens for real.
    app = create_app(make_settings(pg_url))
    async with (
        serve_in_process(app) as base,
        httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
    ):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(
            api, tenant, scheme="github", action="message", config={"template": GITHUB_TEMPLATE}
        )
        body = signing.dumps(signing.github_issue(5150, "Raced"))
        headers = signing.github(hook["secret"], body, delivery="race")
        for concurrent in (5, 12):
            answers = await asyncio.gather(
                *(post(api, hook["url"], body, headers) for _ in range(concurrent))
            )
            assert {r.status_code for r in answers} == {202}
            assert len({r.json()["id"] for r in answers}) == 1
            duplicates = sorted(r.json()["duplicate"] for r in answers)
            if concurrent == 5:  # the first burst: exactly one request stored the event
                assert duplicates == [False] + [True] * 4
            else:  # the second burst: the same event, stored already
                assert duplicates == [True] * 12
        event = await settled(api, tenant, hook["id"], answers[0].json()["id"])
        assert event["status"] == "processed", event
        # A sentinel for another issue, processed after: any second processing had its chance.
        sentinel = await github_event(api, hook, signing.github_issue(5151, "Sentinel"))
        await settled(api, tenant, hook["id"], sentinel)
        [event] = [e for e in await events(api, tenant, hook["id"]) if e["id"] == event["id"]]
        assert event["attempts"] == 1
        assert await count_events(api, hook["id"]) == 2
        rooms = (await http.get("/api/v1/rooms/all", headers=tenant.auth)).json()["data"]
        assert len(rooms) == 2  # the raced issue's room and the sentinel's
        [message] = await messages_of(api, tenant, event["outcome"]["room_id"])
        assert message["content"] == "New issue: Raced"


async def test_ingestion_needs_no_api_key_and_is_public_in_openapi(api: Api) -> None:
    spec = (await api.http.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/webhooks/{client_slug}/{name}"]["post"]
    assert not operation.get("security")
    assert {"202", "401", "403", "404", "413"} <= set(operation["responses"])
    managed = spec["paths"]["/api/v1/inbound-webhooks"]["post"]
    assert managed["security"]


async def test_hook_names_are_unique_per_client(api: Api) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    await make_hook(api, tenant, name="dup")
    again = await api.http.post(
        "/api/v1/inbound-webhooks", json={"name": "dup", "action": "room"}, headers=tenant.auth
    )
    assert again.status_code == 409
    await make_hook(api, other, name="dup")  # another client may use the name


async def test_invalid_template_is_refused_when_the_hook_is_saved(api: Api) -> None:
    tenant = await api.tenant()
    r = await api.http.post(
        "/api/v1/inbound-webhooks",
        json={"name": "t", "action": "room", "config": {"template": {"name": "{{ body.x "}}},
        headers=tenant.auth,
    )
    assert r.status_code == 422
    assert "template" in r.json()["detail"]


async def test_a_hook_over_its_rate_limit_is_429_with_retry_after_and_stores_nothing(
    sqlite_url: str,
) -> None:
    app = create_app(
        make_settings(sqlite_url, RATE_LIMIT_INBOUND_PER_MINUTE=2), run_embedded_worker=False
    )
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, name="limited", scheme="github")
        answers = []
        for i in range(3):
            body = signing.dumps({"n": i})
            answers.append(await post(api, hook["url"], body, signing.github(hook["secret"], body)))
        assert [a.status_code for a in answers] == [202, 202, 429]
        assert answers[2].headers["content-type"] == "application/problem+json"
        assert int(answers[2].headers["retry-after"]) >= 1
        assert answers[0].headers["ratelimit-limit"] == "2"
        assert await count_events(api, hook["id"]) == 2
