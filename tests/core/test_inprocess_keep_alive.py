"""The tests' in-process server (tests/support/inprocess.py) keeps an idle connection open
longer than an httpx client keeps it for reuse.

Both used to give up at 5 s: a request sent on a connection idle for ~5 s could reach the
server just as its keep-alive timer closed the socket, and the client got httpx.ReadError
with nothing logged (it failed test_mail_goes_through_the_fallback_when_the_primary_is_stopped
on a loaded box, whose blocking aiosmtpd start-ups made that gap ~5 s).
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.support.inprocess import serve_in_process

# httpx's default: an idle pooled connection is reused for up to this long.
HTTPX_KEEPALIVE_EXPIRY = 5.0


def test_httpx_keeps_its_default_keep_alive_expiry() -> None:
    # The bound below is httpx's own: if httpx changes it, so must this test.
    assert httpx.Limits().keepalive_expiry == HTTPX_KEEPALIVE_EXPIRY


async def test_an_idle_connection_outlives_the_clients_keep_alive_expiry() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    async with serve_in_process(app) as base:
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"
        try:
            writer.write(request)
            first = await asyncio.wait_for(reader.readuntil(b'{"ok":true}'), 5)
            assert first.startswith(b"HTTP/1.1 200")
            # Idle for as long as httpx would still reuse the connection, and a little more.
            await asyncio.sleep(HTTPX_KEEPALIVE_EXPIRY + 0.5)
            writer.write(request)
            second = await asyncio.wait_for(reader.read(4096), 5)
            assert second.startswith(b"HTTP/1.1 200"), second
        finally:
            writer.close()
