"""The finisher's batched endpoint bookkeeping leaves each endpoint as recording every
outcome one by one, in order, would (app/notifications/delivery.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.channels.base import Outcome, OutcomeKind
from app.core.clock import utcnow
from app.core.ids import new_id
from app.notifications.delivery_results import AttemptResult, _record_endpoint_outcomes
from app.notifications.models import Delivery, Notification
from app.runtime import Runtime
from app.webhooks import repository as webhook_repo
from app.webhooks import service as webhooks
from tests.notifications.relay import add_endpoint
from tests.support.api import Api

OK = Outcome(OutcomeKind.DELIVERED, response_code=200)
FAIL = Outcome(OutcomeKind.RETRY, response_code=503, error="HTTP 503")
# Refused by our own in-flight cap: never reached the endpoint, not counted.
BUSY = Outcome(OutcomeKind.DEFER, capacity_key="e", error="endpoint has 4 deliveries in flight")
# The receiver's own words that happen to read like ours still count (no string matching).
LOOKALIKE = Outcome(OutcomeKind.RETRY, error="ClientOSError: 4 requests in flight, not loaded")


def _result(client_id: str, endpoint_id: str, outcome: Outcome) -> AttemptResult:
    notification = Notification(id=new_id(), client_id=client_id)
    delivery = Delivery(
        id=new_id(),
        client_id=client_id,
        notification_id=notification.id,
        channel="webhook",
        endpoint_id=endpoint_id,
        recipient={},
    )
    return AttemptResult(delivery, notification, outcome)


@pytest.mark.parametrize(
    "sequence",
    [
        [OK, OK, OK],
        [FAIL, OK, OK],
        [OK, FAIL],
        [OK, FAIL, OK, FAIL, FAIL],
        [FAIL, BUSY, FAIL],
        [OK, BUSY, FAIL, OK],
        [OK, LOOKALIKE],
        [LOOKALIKE, BUSY, LOOKALIKE],
    ],
)
async def test_a_batch_leaves_the_endpoint_as_one_by_one_recording_would(
    api: Api, sequence: list[Outcome]
) -> None:
    assert api.app is not None
    runtime: Runtime = api.app.state.runtime
    tenant = await api.tenant()
    batched, one_by_one = [
        (await add_endpoint(api.app, tenant, "https://hooks.example.com/x"))[0] for _ in range(2)
    ]
    earlier = utcnow() - timedelta(hours=1)
    now = utcnow()
    policy = webhooks.DisablePolicy.from_settings(runtime.settings)
    async with runtime.db.session() as session:
        for endpoint_id in (batched, one_by_one):  # both start inside a run of failures
            await webhook_repo.record_failure(session, tenant.id, endpoint_id, now=earlier)
        disabled: list[str] = []
        batch = [_result(tenant.id, batched, o) for o in sequence]
        await _record_endpoint_outcomes(session, runtime, batch, now, disabled)
        for outcome in sequence:
            if outcome is not BUSY:
                await webhooks.record_outcome(
                    session, runtime.bus, tenant.id, one_by_one, outcome, now, policy=policy
                )
        await session.commit()

    async with runtime.db.read_session() as session:
        rows = {
            r.id: r for r in await webhook_repo.by_ids(session, tenant.id, [batched, one_by_one])
        }
    got, expected = rows[batched], rows[one_by_one]
    assert (got.failure_count, got.failing_since) == (
        expected.failure_count,
        expected.failing_since,
    )
    assert disabled == []
