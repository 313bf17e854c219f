"""Replays with a new unsigned id (github, hmac-sha256): the optional content-hash window
(`signature.content_dedupe_seconds`), and the schemes whose id or timestamp is signed."""

from __future__ import annotations

import asyncio

import pytest

from app.core.clock import ManualClock
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import count_events, events, make_hook, post
from tests.support.api import Api

ISSUE = signing.dumps(signing.github_issue(7001, "Captured"))


async def test_github_replay_with_a_new_delivery_id_is_a_duplicate_within_the_window(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github", signature={"content_dedupe_seconds": 600})
    assert hook["signature"]["content_dedupe_seconds"] == 600
    first = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, "d-1"))
    assert first.status_code == 202 and first.json()["duplicate"] is False
    # A captured delivery replayed with a fresh X-GitHub-Delivery (not signed by GitHub).
    clock.advance(599)
    replay = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, "d-2"))
    assert replay.status_code == 202
    assert replay.json() == {"id": first.json()["id"], "status": "pending", "duplicate": True}
    assert await count_events(api, hook["id"]) == 1
    # Another body is another event.
    other = signing.dumps(signing.github_issue(7002, "Other"))
    fresh = await post(api, hook["url"], other, signing.github(hook["secret"], other, "d-3"))
    assert fresh.json()["duplicate"] is False
    # The window is counted from the first event (the replay did not extend it): once it is
    # over, the same content is a new event again.
    clock.advance(2)
    later = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, "d-4"))
    assert later.status_code == 202 and later.json()["duplicate"] is False
    assert later.json()["id"] != first.json()["id"]
    # ... and opens a window of its own.
    again = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, "d-5"))
    assert again.json() == {"id": later.json()["id"], "status": "pending", "duplicate": True}
    assert await count_events(api, hook["id"]) == 3


async def test_without_the_window_a_new_delivery_id_is_a_new_event(api: Api) -> None:
    # The documented caveat: the id is the sender's unsigned header.
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github")
    for delivery in ("d-1", "d-2"):
        r = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, delivery))
        assert r.json()["duplicate"] is False
    assert await count_events(api, hook["id"]) == 2


async def test_hmac_sha256_without_an_id_dedupes_by_content_in_the_window(
    api: Api, clock: ManualClock
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(
        api,
        tenant,
        scheme="hmac-sha256",
        signature={"dedupe_header": "X-Delivery", "content_dedupe_seconds": 60},
    )
    sign = signing.plain_hmac(hook["secret"], ISSUE)
    first = await post(api, hook["url"], ISSUE, {"X-Signature": sign, "X-Delivery": "a"})
    replay = await post(api, hook["url"], ISSUE, {"X-Signature": sign, "X-Delivery": "b"})
    bare = await post(api, hook["url"], ISSUE, {"X-Signature": sign})
    assert [r.status_code for r in (first, replay, bare)] == [202] * 3
    assert replay.json()["id"] == bare.json()["id"] == first.json()["id"]
    assert (replay.json()["duplicate"], bare.json()["duplicate"]) == (True, True)
    [event] = await events(api, tenant, hook["id"])
    assert event["dedupe_key"] == "a"
    clock.advance(61)
    assert (await post(api, hook["url"], ISSUE, {"X-Signature": sign})).json()["duplicate"] is False


async def test_the_window_is_per_hook(api: Api) -> None:
    tenant = await api.tenant()
    hooks = [
        await make_hook(
            api, tenant, name=name, scheme="github", signature={"content_dedupe_seconds": 60}
        )
        for name in ("a", "b")
    ]
    for hook in hooks:
        r = await post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE))
        assert r.json()["duplicate"] is False


async def test_simultaneous_replays_with_new_ids_store_one_event_on_postgresql(
    pg_url: str,
) -> None:
    app = create_app(make_settings(pg_url), run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(
            api, tenant, scheme="github", signature={"content_dedupe_seconds": 300}
        )
        answers = await asyncio.gather(
            *(
                post(api, hook["url"], ISSUE, signing.github(hook["secret"], ISSUE, f"d-{n}"))
                for n in range(12)
            )
        )
        assert {r.status_code for r in answers} == {202}
        assert len({r.json()["id"] for r in answers}) == 1
        assert sorted(r.json()["duplicate"] for r in answers) == [False] + [True] * 11
        assert await count_events(api, hook["id"]) == 1


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"scheme": "standard-webhooks", "signature": {"content_dedupe_seconds": 60}}, "github"),
        ({"scheme": "stripe", "signature": {"content_dedupe_seconds": 60}}, "github"),
        ({"scheme": "github", "signature": {"content_dedupe_seconds": -1}}, "greater than"),
        ({"scheme": "github", "signature": {"content_dedupe_seconds": 10**9}}, "less than"),
    ],
)
async def test_a_window_where_it_cannot_apply_is_refused(
    api: Api, payload: dict[str, object], fragment: str
) -> None:
    tenant = await api.tenant()
    r = await api.http.post(
        "/api/v1/inbound-webhooks",
        json={"name": "x", "action": "room", **payload},
        headers=tenant.auth,
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert fragment in r.text


async def test_patch_sets_the_window_and_refuses_a_scheme_it_cannot_apply_to(
    api: Api,
) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github")
    path = f"/api/v1/inbound-webhooks/{hook['id']}"
    on = await api.http.patch(
        path, json={"signature": {"content_dedupe_seconds": 120}}, headers=tenant.auth
    )
    assert on.status_code == 200, on.text
    assert on.json()["signature"]["content_dedupe_seconds"] == 120
    stripe = await api.http.patch(path, json={"scheme": "stripe"}, headers=tenant.auth)
    assert stripe.status_code == 422, stripe.text
    assert "content_dedupe_seconds" in stripe.json()["detail"]
    off = await api.http.patch(
        path,
        json={"scheme": "stripe", "signature": {"content_dedupe_seconds": 0}},
        headers=tenant.auth,
    )
    assert off.status_code == 200, off.text


async def test_signed_ids_and_timestamps_already_refuse_replays(
    api: Api, clock: ManualClock
) -> None:
    # What the README says of the other schemes: their id is signed (a new one breaks the
    # signature) and a replay outside the timestamp tolerance is refused.
    tenant = await api.tenant()
    std = await make_hook(api, tenant, name="std")
    headers = signing.standard_webhooks(std["secret"], ISSUE, clock.now(), "msg_1")
    assert (await post(api, std["url"], ISSUE, headers)).json()["duplicate"] is False
    assert (await post(api, std["url"], ISSUE, headers)).json()["duplicate"] is True
    renamed = {**headers, "webhook-id": "msg_2"}
    assert (await post(api, std["url"], ISSUE, renamed)).status_code == 401
    stripe = await make_hook(api, tenant, name="stripe", scheme="stripe")
    body = signing.dumps({"id": "evt_9", "type": "charge.succeeded"})
    signed = signing.stripe(stripe["secret"], body, clock.now())
    assert (await post(api, stripe["url"], body, signed)).json()["duplicate"] is False
    assert (await post(api, stripe["url"], body, signed)).json()["duplicate"] is True
    clock.advance(301)
    assert (await post(api, std["url"], ISSUE, headers)).status_code == 401
    assert (await post(api, stripe["url"], body, signed)).status_code == 401
