"""A bulk send through a real `chatapi worker` (PostgreSQL, Redis broker): 1,200 users with
e-mail addresses, a route whose bulk chain is `mailgun` from 1,000 recipients, one send.
The API rings the e-mail deliveries 1,000 per task message (the channel's `batch_size`),
the worker hands each message's deliveries to the channel in one batch and the provider
makes one Messages API call per 1,000: exactly two calls reach the fake Mailgun, every
delivery is `delivered`, every attempt served by `mailgun`, the transactional chain unused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.core.ids import new_id
from app.main import create_app
from app.notifications.models import Delivery, DeliveryAttempt
from app.runtime import Runtime
from app.users.models import User
from tests.conftest import child_env, make_settings
from tests.notifications.relay import RELAY_SETTINGS, Relay, send, wait_for_status
from tests.providers.test_mailgun_e2e import add_mailgun
from tests.support.api import Api
from tests.support.fake_mailgun import running_mailgun
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process
from tests.support.processes import chatapi_process

USERS = 1200


@pytest.mark.slow
async def test_1200_recipients_reach_mailgun_in_two_calls(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}bulk:",
        SECRET_KEY="bulk-test-secret-key-0123456789abcdef",
        RATE_LIMIT_EMAILS_PER_HOUR=100_000,  # the default (1,000 an hour) would defer 200
        **{
            **RELAY_SETTINGS,
            # The fake Mailgun parses a 1,000-recipient form on this test's loop, beside the
            # API: on the loaded CI box that took over the relay's 2 s, and a timed-out call
            # is a retry (the test counts calls, and runs no beat to sweep retries).
            "WEBHOOK_TIMEOUT_SECONDS": 30,
            "DELIVERY_LEASE_SECONDS": 60,  # must exceed the longest channel timeout
        },
    )
    app = create_app(settings)  # REDIS_URL set: no embedded worker in this process
    async with running_mailgun() as bulk, running_mailgun() as transactional:
        with chatapi_process(
            ["worker", "--concurrency", "2"], child_env(settings), tmp_path, "worker"
        ) as worker:
            async with (
                serve_in_process(app) as base,
                httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
            ):
                api = Api(http, app=app)
                tenant = await api.tenant()
                runtime: Runtime = app.state.runtime
                async with runtime.db.session() as session:
                    session.add_all(
                        User(
                            id=new_id(),
                            client_id=tenant.id,
                            external_id=f"u{n}",
                            email=f"user{n}@example.com",
                        )
                        for n in range(USERS)
                    )
                    await session.commit()
                relay = Relay(api, base, app)
                await add_mailgun(relay, tenant, bulk, "mailgun")
                await add_mailgun(relay, tenant, transactional, "transactional")
                r = await http.put(
                    "/api/v1/routing/email",
                    json={
                        "providers": ["transactional"],
                        "bulk": {"min_recipients": 1000, "providers": ["mailgun"]},
                    },
                    headers=tenant.auth,
                )
                assert r.status_code == 200, r.text
                sent = await send(
                    api,
                    tenant,
                    {
                        "channels": ["email"],
                        "recipients": [{"external_id": f"u{n}"} for n in range(USERS)],
                        "email": {"subject": "Our spring sale", "text": "Everything -20%"},
                    },
                )
                done = await wait_for_status(
                    api, tenant, sent["id"], {"delivered", "failed", "partial"}, timeout=90
                )
                assert done["status"] == "delivered", worker.output()[-3000:]
                async with runtime.db.session() as session:
                    statuses = dict(
                        (
                            await session.execute(
                                select(col(Delivery.status), func.count())
                                .where(col(Delivery.notification_id) == sent["id"])
                                .group_by(col(Delivery.status))
                            )
                        ).all()
                    )
                    served = Counter(
                        (
                            await session.execute(
                                select(col(DeliveryAttempt.served_by)).where(
                                    col(DeliveryAttempt.notification_id) == sent["id"]
                                )
                            )
                        )
                        .scalars()
                        .all()
                    )
    assert statuses == {"delivered": USERS}
    assert served == Counter({"mailgun": USERS})
    assert sorted(len(c.recipients) for c in bulk.calls) == [200, 1000]
    assert transactional.calls == []
    assert len({r.address for r in bulk.recipients()}) == USERS
