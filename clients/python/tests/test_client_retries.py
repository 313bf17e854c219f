"""Retries: a 429 is waited out per Retry-After; a send retried after a dropped connection
creates one notification (the automatic Idempotency-Key)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from conftest import Server, chatapi_server
from proxy import CuttingProxy

from chatapi_client import ChatAPI, RateLimitError


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose deployment default is 3 requests per minute per key."""
    workdir = tmp_path_factory.mktemp("limited")
    with chatapi_server(workdir, "limited", worker=False, RATE_LIMIT_REQUESTS_PER_MINUTE=3) as s:
        yield s


@pytest.fixture
def proxy(server: Server) -> Iterator[CuttingProxy]:
    running = CuttingProxy(int(urlsplit(server.base).port or 80))
    yield running
    running.close()


def test_a_429_with_retry_after_is_waited_out(limited_server: Server) -> None:
    key = limited_server.tenant()
    with (
        ChatAPI(limited_server.base, key, max_retries=0) as impatient,
        pytest.raises(RateLimitError) as refused,
    ):
        # Three a minute: at most one minute boundary falls within eight calls.
        for _ in range(8):
            impatient.clients.me()
    assert refused.value.status == 429 and refused.value.problem["status"] == 429
    retry_after = refused.value.retry_after
    assert retry_after is not None and 0 < retry_after <= 60

    with ChatAPI(limited_server.base, key) as patient:
        started = time.monotonic()
        me = patient.clients.me()
        waited = time.monotonic() - started
    assert me.slug
    # It waited (at least most of) what the server asked for, and then it went through.
    assert waited >= retry_after - 1.5, (waited, retry_after)


def test_a_send_retried_after_a_dropped_connection_creates_one_notification(
    server: Server, master_key: str, proxy: CuttingProxy
) -> None:
    with ChatAPI(server.base, master_key) as direct:
        user = direct.users.upsert("dropped")
        room = direct.rooms.create(name="once", member_ids=[user.id])
    with ChatAPI(proxy.base, master_key) as chat:
        proxy.drop_answers = 1
        sent = chat.notifications.send(
            channels=["websocket"],
            recipients=[{"user_id": user.id}],
            websocket={"event": "order.shipped", "data": {"order": "A-1"}},
        )
        assert proxy.dropped == 1
        proxy.drop_answers = 1
        message = chat.messages.send(room.id, "only once")
        assert proxy.dropped == 2
        # The first attempts reached the server; the retries were answered with their results.
        assert [n.id for n in chat.notifications.list()] == [sent.id]
        assert [m.id for m in chat.messages.list(room.id)] == [message.id]


def test_a_post_that_is_not_idempotent_is_not_retried_after_it_may_have_run(
    server: Server, master_key: str, proxy: CuttingProxy
) -> None:
    from chatapi_client import APIConnectionError

    with ChatAPI(proxy.base, master_key) as chat:
        proxy.drop_answers = 1
        with pytest.raises(APIConnectionError):
            chat.webhook_endpoints.create("http://127.0.0.1:9/hook")
        assert [e.url for e in chat.webhook_endpoints.list()] == ["http://127.0.0.1:9/hook"]


def test_a_503_is_retried_for_reads_and_sends_but_not_for_other_posts(
    server: Server, master_key: str, proxy: CuttingProxy
) -> None:
    from chatapi_client import ServerError

    # A fresh client for each step: the proxy answers 503 on new connections only.
    with ChatAPI(proxy.base, master_key) as chat:
        proxy.unavailable = 1
        started = time.monotonic()
        assert chat.clients.me().slug
        assert time.monotonic() - started >= 0.9  # its Retry-After: 1
    with ChatAPI(proxy.base, master_key) as chat:
        proxy.unavailable = 1
        with pytest.raises(ServerError) as failed:
            chat.rooms.create(name="maybe")  # it may have run: the caller decides
        assert failed.value.status == 503 and failed.value.problem["detail"] == "gateway busy"
    with ChatAPI(proxy.base, master_key) as chat:
        proxy.unavailable = 2
        sent = chat.notifications.send(
            channels=["webhook"], webhook={"event_type": "x", "payload": {}}
        )
        assert proxy.unavailable == 0
        assert [n.id for n in chat.notifications.list()] == [sent.id]
        assert [r.name for r in chat.rooms.list()] == []


def test_connection_failures_are_retried_with_backoff_then_raised(
    server: Server, master_key: str, proxy: CuttingProxy
) -> None:
    from tests.support.processes import free_port

    from chatapi_client import APIConnectionError

    with ChatAPI(proxy.base, master_key, max_retries=6) as chat:
        proxy.cut(refuse_for=0.5)  # connections closed before any answer, for 0.5 s
        assert chat.clients.me().slug
    nobody = f"http://127.0.0.1:{free_port()}"
    with ChatAPI(nobody, master_key, max_retries=2) as chat:
        with pytest.raises(APIConnectionError) as failed:
            chat.clients.me()
        assert failed.value.status == 0 and "ConnectError" in failed.value.detail
