"""A small TCP proxy that can cut every connection, refuse for a while, or drop the first
answer of a request (after the server handled it): dropped connections on demand."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tests.support.processes import free_port


class CuttingProxy:
    """Forwards 127.0.0.1:port to `target_port` from a thread of its own."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._refuse_until = 0.0
        self.drop_answers = 0
        # Answer this many requests with a 503 ourselves, as an overloaded gateway would.
        self.unavailable = 0
        self.dropped = 0
        self.cuts = 0
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        ready.set()
        self._loop.run_forever()
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            writer.close()
            return
        if self.unavailable > 0:
            self.unavailable -= 1
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"title":"Service Unavailable","status":503,"detail":"gateway busy"}'
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                b"Content-Type: application/problem+json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, answers: bool) -> None:
            try:
                while data := await src.read(65536):
                    if answers and self.drop_answers > 0:
                        # The server answered: it handled the request; the client never hears.
                        self.drop_answers -= 1
                        self.dropped += 1
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in (writer, up_writer):
                    w.close()
                    self._writers.discard(w)

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    def _run(self, fn: Any) -> None:
        done = threading.Event()

        def call() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(call)
        done.wait(10)

    def cut(self, refuse_for: float = 0.3) -> None:
        """Close every connection now and refuse new ones for `refuse_for` seconds."""

        def cut_all() -> None:
            self._refuse_until = time.monotonic() + refuse_for
            self.cuts += 1
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()

        self._run(cut_all)

    def close(self) -> None:
        """Stop the proxy."""
        self.cut(0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
