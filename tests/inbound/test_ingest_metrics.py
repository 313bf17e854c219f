"""`chatapi_inbound_events_total` counts every inbound POST by outcome (issue 21: it was
declared but never counted), read back through GET /metrics like a scraper would."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.inbound import signing
from tests.inbound.conftest import make_hook, post
from tests.support.api import Api

BODY = signing.dumps({"id": "evt_1", "type": "ticket.created", "ticket": {"id": 7}})
METRIC = "chatapi_inbound_events_total"


async def _counts(api: Api) -> dict[str, float]:
    """The metric's value by outcome, as GET /metrics shows it."""
    r = await api.http.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == METRIC
    }


async def _moved(api: Api, before: dict[str, float]) -> dict[str, float]:
    after = await _counts(api)
    moved = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in moved.items() if v}


async def test_each_inbound_post_is_counted_by_its_outcome(api: Api) -> None:
    tenant = await api.tenant()
    hook = await make_hook(api, tenant, scheme="github", name="gh")
    signed = signing.github(hook["secret"], BODY, delivery="d-1")

    before = await _counts(api)
    assert (await post(api, hook["url"], BODY, signed)).status_code == 202
    assert await _moved(api, before) == {"accepted": 1}

    before = await _counts(api)
    assert (await post(api, hook["url"], BODY, signed)).json()["duplicate"] is True
    assert await _moved(api, before) == {"duplicate": 1}

    before = await _counts(api)
    forged = signing.github("whsec_wrong", BODY)
    assert (await post(api, hook["url"], BODY, forged)).status_code == 401
    missing = f"/api/v1/webhooks/{tenant.slug}/no-such-hook"
    assert (await post(api, missing, BODY, signed)).status_code == 404
    assert await _moved(api, before) == {"rejected": 1, "unknown_hook": 1}

    r = await api.http.patch(
        f"/api/v1/inbound-webhooks/{hook['id']}", json={"disabled": True}, headers=tenant.auth
    )
    assert r.status_code == 200, r.text
    before = await _counts(api)
    assert (await post(api, hook["url"], BODY, signed)).status_code == 403
    assert await _moved(api, before) == {"disabled": 1}


async def test_limited_and_oversized_posts_are_counted(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, RATE_LIMIT_INBOUND_PER_MINUTE=1, INBOUND_MAX_BODY_BYTES=1000
    )
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        api = Api(http, app=app)
        tenant = await api.tenant()
        hook = await make_hook(api, tenant, scheme="github")
        before = await _counts(api)
        codes = []
        for i in range(2):
            body = signing.dumps({"n": i})
            r = await post(api, hook["url"], body, signing.github(hook["secret"], body))
            codes.append(r.status_code)
        big = signing.dumps({"pad": "x" * 1000})
        r = await post(api, hook["url"], big, signing.github(hook["secret"], big))
        codes.append(r.status_code)
        assert codes == [202, 429, 413]
        assert await _moved(api, before) == {"accepted": 1, "limited": 1, "too_large": 1}
