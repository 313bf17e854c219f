"""`send_at` on POST /notifications/send: an ISO time with an offset, no further back than the
clock-skew tolerance (then it means "now") and no further ahead than a year; on both
databases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from app.core.clock import ManualClock
from app.notifications.scheduling import SEND_AT_MAX_AHEAD, SEND_AT_PAST_TOLERANCE
from tests.support.api import Api, Tenant

URL = "/api/v1/notifications/send"


def _body(user_id: str, send_at: str, **extra: Any) -> dict[str, Any]:
    return {
        "channels": ["websocket"],
        "recipients": [{"user_id": user_id}],
        "websocket": {"event": "order.shipped", "data": {}},
        "send_at": send_at,
        **extra,
    }


async def _tenant_and_user(api: Api) -> tuple[Tenant, str]:
    tenant = await api.tenant()
    return tenant, (await api.user(tenant))["id"]


def _assert_send_at_refused(r: Any, words: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert words in problem["detail"], problem["detail"]
    assert any("send_at" in err["loc"] for err in problem["errors"]), problem["errors"]


async def test_a_send_at_without_an_offset_is_a_422_naming_it(api: Api, clock: ManualClock) -> None:
    tenant, user = await _tenant_and_user(api)
    naive = (clock.now() + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    r = await api.http.post(URL, json=_body(user, naive), headers=tenant.auth)
    _assert_send_at_refused(r, "offset")


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"])
async def test_a_send_at_long_past_is_a_422_not_now(api: Api, when: str) -> None:
    tenant, user = await _tenant_and_user(api)
    r = await api.http.post(URL, json=_body(user, when), headers=tenant.auth)
    _assert_send_at_refused(r, "in the past")


async def test_a_send_at_just_past_the_tolerance_is_refused(api: Api, clock: ManualClock) -> None:
    tenant, user = await _tenant_and_user(api)
    late = clock.now() - SEND_AT_PAST_TOLERANCE - timedelta(seconds=1)
    r = await api.http.post(URL, json=_body(user, late.isoformat()), headers=tenant.auth)
    _assert_send_at_refused(r, "in the past")


async def test_a_send_at_within_the_tolerance_is_now(api: Api, clock: ManualClock) -> None:
    tenant, user = await _tenant_and_user(api)
    # A client whose clock runs behind ours, written in another offset.
    skewed = (clock.now() - SEND_AT_PAST_TOLERANCE + timedelta(seconds=1)).astimezone(
        timezone(timedelta(hours=-5))
    )
    r = await api.http.post(URL, json=_body(user, skewed.isoformat()), headers=tenant.auth)
    assert r.status_code == 202, r.text
    sent = r.json()
    # Not scheduled: the in-app delivery is delivered (stored) now.
    assert sent["status"] == "delivered"
    delivered = datetime.fromisoformat(sent["deliveries"][0]["delivered_at"])
    assert delivered == clock.now()


async def test_a_send_at_more_than_a_year_ahead_is_refused(api: Api, clock: ManualClock) -> None:
    tenant, user = await _tenant_and_user(api)
    for when in (
        (clock.now() + SEND_AT_MAX_AHEAD + timedelta(seconds=1)).isoformat(),
        "9999-12-31T23:59:59-14:00",  # past datetime's range once made UTC
    ):
        r = await api.http.post(URL, json=_body(user, when), headers=tenant.auth)
        _assert_send_at_refused(r, "ahead")
    within = (clock.now() + SEND_AT_MAX_AHEAD).isoformat()
    r = await api.http.post(URL, json=_body(user, within), headers=tenant.auth)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "scheduled"


async def test_a_retry_with_the_same_idempotency_key_after_send_at_has_passed_answers_the_first(
    api: Api, clock: ManualClock
) -> None:
    tenant, user = await _tenant_and_user(api)
    body = _body(user, clock.now().isoformat(), idempotency_key="order-1-shipped")
    first = await api.http.post(URL, json=body, headers=tenant.auth)
    assert first.status_code == 202, first.text
    clock.advance(SEND_AT_PAST_TOLERANCE.total_seconds() + 60)
    again = await api.http.post(URL, json=body, headers=tenant.auth)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
