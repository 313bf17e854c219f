"""An SMS through the scaled relay: the API in this process on PostgreSQL + Redis, a real
`chatapi worker` child process (Celery on Redis) sending it through the tenant's twilio
provider to the fake Twilio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import child_env, make_settings
from tests.notifications.relay import RELAY_SETTINGS, attempts, send, wait_for_status
from tests.support.api import Api
from tests.support.fake_twilio import FakeTwilio, running_twilio
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process
from tests.support.processes import chatapi_process

PUBLIC = "https://chat.example.com"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with running_twilio() as fake:
        yield fake


@pytest.mark.slow
async def test_a_celery_worker_sends_the_sms_through_twilio(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path, fake: FakeTwilio
) -> None:
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}sms:",
        SECRET_KEY="sms-test-secret-key-0123456789abcdef",
        PUBLIC_BASE_URL=PUBLIC,
        **RELAY_SETTINGS,
    )
    app = create_app(settings)  # REDIS_URL set: no embedded worker in this process
    who = fake.account()
    with chatapi_process(
        ["worker", "--concurrency", "2"], child_env(settings), tmp_path, "worker"
    ) as worker:
        async with (
            serve_in_process(app) as base,
            httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
        ):
            api = Api(http, app=app)
            tenant = await api.tenant()
            provider = {
                "name": "twilio-main",
                "type": "twilio",
                "settings": {
                    "account_sid": who.sid,
                    "auth_token": who.auth_token,
                    "from_number": "+15005550006",
                    "base_url": fake.base_url,
                },
            }
            made = await http.post("/api/v1/providers", json=provider, headers=tenant.auth)
            assert made.status_code == 201, made.text
            user = await api.user(tenant, phone="+14155550100")
            sent = await send(
                api,
                tenant,
                {
                    "channels": ["sms"],
                    "recipients": [{"user_id": user["id"]}],
                    "sms": {"text": "Your code is 123456"},
                },
            )
            done = await wait_for_status(
                api, tenant, sent["id"], {"delivered", "failed"}, timeout=60
            )
            assert done["status"] == "delivered", (done, worker.output()[-3000:])
            [message] = fake.messages
            [delivery] = done["deliveries"]
            assert message.to == "+14155550100" and message.form["Body"] == "Your code is 123456"
            assert message.form["StatusCallback"] == (
                f"{PUBLIC}/api/v1/provider-events/{tenant.slug}/twilio-main"
                f"?delivery_id={delivery['id']}"
            )
            [attempt] = await attempts(api, tenant, sent["id"])
            assert attempt["served_by"] == "twilio-main" and attempt["reply"] == message.sid
