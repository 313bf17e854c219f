"""The relay in scaled mode: the API in this process on PostgreSQL + Redis, a real
`chatapi worker` and `chatapi beat` as child processes doing the delivering and sweeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from app.main import create_app
from tests.channels.receiver import Receiver, running_receiver
from tests.channels.test_email import Recorder, SmtpHost
from tests.conftest import child_env, make_settings
from tests.notifications.relay import (
    RELAY_SETTINGS,
    add_endpoint,
    attempts,
    send,
    set_email_config,
    wait_for_status,
)
from tests.support.api import Api
from tests.support.inprocess import RELAY_CLIENT_TIMEOUT, serve_in_process
from tests.support.processes import chatapi_process
from tests.support.realtime import WsClient, wait_for


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.mark.slow
async def test_worker_process_delivers_all_channels_and_retries_through_the_sweep(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path, receiver: Receiver
) -> None:
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}relay:",
        SECRET_KEY="relay-test-secret-key-0123456789abcdef",
        **RELAY_SETTINGS,
    )
    env = child_env(settings)
    smtp = SmtpHost(Recorder())
    app = create_app(settings)  # REDIS_URL set: no embedded worker in this process
    try:
        with (
            chatapi_process(["worker", "--concurrency", "2"], env, tmp_path, "worker") as worker,
            chatapi_process(["beat"], env, tmp_path, "beat"),
        ):
            async with (
                serve_in_process(app) as base,
                httpx.AsyncClient(base_url=base, timeout=RELAY_CLIENT_TIMEOUT) as http,
            ):
                api = Api(http, app=app)
                tenant = await api.tenant()
                user = await api.user(tenant, email="ada@example.com")
                key = await api.login(tenant, user["id"])
                _, secret = await add_endpoint(app, tenant, receiver.url("/flaky"))
                receiver.script("/flaky", 503, 200)
                await set_email_config(app, tenant, smtp.port)
                socket = await WsClient.open(base, key)
                try:
                    sent = await send(
                        api,
                        tenant,
                        {
                            "channels": ["websocket", "email", "webhook"],
                            "recipients": [{"user_id": user["id"]}],
                            "websocket": {"event": "order.shipped", "data": {"n": 1}},
                            "email": {"subject": "Shipped", "text": "On its way"},
                            "webhook": {"event_type": "order.shipped", "payload": {"n": 1}},
                        },
                    )
                    done = await wait_for_status(
                        api, tenant, sent["id"], {"delivered", "failed", "partial"}, timeout=40
                    )
                    assert done["status"] == "delivered", (done, worker.output()[-3000:])
                    _, data = await wait_for(socket.events, lambda e: e[0] == "notification")
                    assert data["notification_id"] == sent["id"]
                    assert len(smtp.recorder.messages) == 1
                    assert len(receiver.requests) == 2  # 503, then 200 after the sweep rang
                    Webhook(secret).verify(receiver.requests[1].body, receiver.requests[1].headers)
                    codes = [
                        a["response_code"]
                        for a in await attempts(api, tenant, sent["id"])
                        if a["channel"] == "webhook"
                    ]
                    assert codes == [503, 200]
                finally:
                    await socket.close()
    finally:
        smtp.stop()
