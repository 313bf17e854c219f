"""`chatapi serve`'s address, taken before anything else starts.

uvicorn binds only after the app's start-up (the embedded worker, the scheduler) and after
`serve` has migrated the database, then dies with a traceback and exit code 3 when the port
is taken. `reserved` binds and listens on every address the host resolves to, as asyncio's
`create_server` (uvicorn's binder) does, holds them while `serve` migrates, and lets go just
before uvicorn binds: a taken port is one clear line before anything ran.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager


class CannotListen(Exception):
    """The address cannot be listened on; the message is one line saying why."""


@contextmanager
def reserved(host: str, port: int) -> Iterator[None]:
    """Listen on `host`:`port` for the duration of the block; raise CannotListen when it
    cannot be had (taken, no such local address, no permission, a name that does not
    resolve)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: the host does not resolve ({exc})") from None
    held: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(
            (i[0], i[1], i[2], "", i[4]) for i in infos
        ):
            try:
                sock = socket.socket(family, type_, proto)
            except OSError:
                continue  # a family this machine lacks (IPv6 off): asyncio skips it too
            held.append(sock)
            # As uvicorn sets it: a previous run's TIME_WAIT connections do not count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                sock.listen()
            except OSError as exc:
                raise CannotListen(f"cannot listen on {where}: {_why(exc)}") from None
        yield
    finally:
        for sock in held:
            sock.close()


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            "the port is already in use (another chatapi serve, or another program); "
            "stop it or choose another with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return "no interface of this machine has that address; check --host"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose another with --port"
    return exc.strerror or str(exc)
