"""One limited worker process: `python -m app.isolation.worker FD`, started by the pool.

It talks to the pool over the socket FD in length-prefixed JSON frames. The first frame is
its set-up: `sys_path` (the parent's, so it imports what the parent would), `preload`
(modules to import before any job: trusted code, before the limits), then the limits it
puts on itself: `memory_bytes` (RLIMIT_AS, soft and hard alike, so not even code that
escaped a sandbox could raise it), `cpu_seconds` (RLIMIT_CPU per job: the CPU time used so
far plus this; the kernel kills it past that, even inside one long C call) and `nice` (the
service's own work runs first). No core files. It then answers `{"ready": true}` and, per
job `{"call": "module:function", "args": [...]}`, one of `{"ok": result}`,
`{"type", "error"}` (the function raised) or `{"oom": true}` (then it exits: a fresh
process replaces it). EOF on the socket ends it, so it never outlives the parent's pool.
"""

from __future__ import annotations

import importlib
import math
import os
import resource
import signal
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

import orjson

FRAME = struct.Struct("!I")
READY = b'{"ready":true}'
OUT_OF_MEMORY = b'{"oom":true}'


def main(fd: int) -> None:
    """Set up from the first frame, then answer jobs until the pool closes the socket."""
    # Ctrl-C in a terminal reaches the whole process group; the pool ends its workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with socket.socket(fileno=fd) as sock:
        setup = receive(sock)
        if setup is None:
            return
        config = orjson.loads(setup)
        sys.path[:] = [str(p) for p in config["sys_path"]]
        for module in config["preload"]:
            importlib.import_module(module)
        os.nice(int(config["nice"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        memory = int(config["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        send(sock, READY)
        while (job := receive(sock)) is not None:
            reply = run(job, int(config["cpu_seconds"]))
            send(sock, reply)
            if reply == OUT_OF_MEMORY:
                return  # no fragmented heap kept: the pool starts a fresh process


def send(sock: socket.socket, data: bytes) -> None:
    """One frame."""
    sock.sendall(FRAME.pack(len(data)) + data)


def receive(sock: socket.socket) -> bytes | None:
    """One frame; None when the other side closed the socket."""
    header = _read(sock, FRAME.size)
    if header is None:
        return None
    return _read(sock, FRAME.unpack(header)[0])


def _read(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def run(job: bytes, cpu_seconds: int) -> bytes:
    """One job's reply frame, under a CPU limit of `cpu_seconds` more than used so far."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    allowed = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        allowed = min(allowed, hard)
    # RLIMIT_CPU counts the process's whole life: this job gets its allowance from here.
    resource.setrlimit(resource.RLIMIT_CPU, (allowed, hard))
    try:
        request = orjson.loads(job)
        function = _resolve(str(request["call"]))
        return orjson.dumps({"ok": function(*request["args"])})
    except MemoryError:
        return OUT_OF_MEMORY
    except Exception as exc:
        try:
            return orjson.dumps({"type": type(exc).__name__, "error": str(exc)})
        except MemoryError:
            return OUT_OF_MEMORY
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    if not callable(function):
        raise TypeError(f"{target} is not callable")
    return function  # type: ignore[no-any-return]


if __name__ == "__main__":
    main(int(sys.argv[1]))
