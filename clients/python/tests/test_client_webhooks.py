"""verify_webhook accepts a real signed delivery of the server and refuses a tampered one."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from conftest import Server

from chatapi_client import ChatAPI, WebhookVerificationError, verify_webhook

Received = list[tuple[bytes, dict[str, str]]]


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received: Received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    http = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_address[1]}/hook", received
    http.shutdown()


def test_a_real_delivery_verifies_and_a_tampered_one_does_not(
    server: Server, master_key: str, receiver: tuple[str, Received]
) -> None:
    url, received = receiver
    with ChatAPI(server.base, master_key) as chat:
        endpoint = chat.webhook_endpoints.create(url, event_types=["order.shipped"])
        assert endpoint.secret and endpoint.secret.startswith("whsec_")
        chat.notifications.send(
            channels=["webhook"],
            webhook={
                "endpoint_ids": [endpoint.id],
                "event_type": "order.shipped",
                "payload": {"order": "A-7"},
            },
        )
    deadline = time.monotonic() + 30
    while not received:
        assert time.monotonic() < deadline, "no delivery within 30 s"
        time.sleep(0.05)
    body, headers = received[0]

    payload = verify_webhook(endpoint.secret, body, headers)
    assert "A-7" in str(payload)
    # Rotation: any of several secrets may sign.
    other = "whsec_" + "A" * 43 + "="
    assert verify_webhook([other, endpoint.secret], body, headers) == payload

    tampered = body.replace(b"A-7", b"A-8")
    with pytest.raises(WebhookVerificationError, match="not verified"):
        verify_webhook(endpoint.secret, tampered, headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(other, body, headers)
    without = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    with pytest.raises(WebhookVerificationError, match="webhook-signature"):
        verify_webhook(endpoint.secret, body, without)
