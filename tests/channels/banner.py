"""A TCP server that is not SMTP: it greets every connection with a fixed banner (what a NATS
or MariaDB server sends) and counts connections, so a test can show both that a non-SMTP
peer's bytes are never echoed and that a refused target was never connected to."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# A marker inside every banner: it must never appear in an answer or an attempt.
MARKER = "SECRETBANNER7Q"
NATS = (
    'INFO {"server_id":"N' + MARKER + '","server_name":"nats-internal","version":"2.10.7",'
    '"proto":1,"host":"0.0.0.0","port":4222,"max_payload":1048576}\r\n'
).encode()
# A MariaDB handshake packet: length, sequence 0, protocol 10 (a "\n"), then the version.
MARIADB = b"[\x00\x00\x00\n5.5.5-10.11.6-MariaDB-" + MARKER.encode() + b"\x00\x08\x00\x00\x00"
# Three digits, but no SMTP reply code (2xx … 5xx).
NOT_A_CODE = ("999 " + MARKER + " ready\r\n").encode()
BANNERS = {"nats": NATS, "mariadb": MARIADB, "not-a-code": NOT_A_CODE}


class BannerServer:
    """Listening on 127.0.0.1:`port` in a thread; `connections` counts accepted ones."""

    def __init__(self, banner: bytes) -> None:
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                conn: socket.socket = self.request
                conn.sendall(banner)
                conn.settimeout(10)
                try:
                    while conn.recv(4096):  # whatever the client says, until it hangs up
                        pass
                except OSError:
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def banner_server(banner: bytes) -> Iterator[BannerServer]:
    """A running BannerServer, stopped afterwards."""
    server = BannerServer(banner)
    try:
        yield server
    finally:
        server.stop()
