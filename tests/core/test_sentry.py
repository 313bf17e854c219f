"""Sentry receives unhandled API errors (a local HTTP receiver stands in for sentry.io)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
import sentry_sdk

from app.main import create_app
from tests.conftest import make_settings


class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        self.bodies.append(raw)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_receiver() -> Iterator[tuple[str, list[bytes]]]:
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_port}/1", _Receiver.bodies
    server.shutdown()
    sentry_sdk.init()  # back to a disabled client for the rest of the run


async def test_unhandled_api_error_is_sent_to_sentry_without_pii(
    sqlite_url: str, sentry_receiver: tuple[str, list[bytes]]
) -> None:
    dsn, bodies = sentry_receiver
    app = create_app(make_settings(sqlite_url, SENTRY_DSN=dsn), run_embedded_worker=False)

    @app.get("/_probe/boom")
    async def boom() -> None:
        raise RuntimeError("sentry-probe-error")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(
                "/_probe/boom", headers={"Authorization": "Bearer very-secret-key"}
            )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    events = [b for b in bodies if b"sentry-probe-error" in b]
    assert events, f"no event reached the receiver ({len(bodies)} bodies)"
    assert b"very-secret-key" not in events[0]
