"""CPU per `POST /api/v1/notifications/send` in-process (P1's stages, without wrk or uvicorn).

The real app (`create_app`, PostgreSQL, Redis broker, nobody consuming) is called as an
ASGI app by this process: `--requests` sends, `--concurrency` at a time, after a warm-up.
Printed: the process's CPU per request (this process is the server; the ASGI calls add
only a scope and two small callables each), and with `--profile cprofile|yappi` the top
functions by inclusive CPU time. Load-independent enough to compare before/after on a
shared machine (CPU seconds, not wall time).

    python bench/send_cpu.py --requests 3000 [--idem] [--profile yappi]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import (
    ADMIN_KEY,
    DEFAULT_PG_SERVER,
    clear_redis,
    create_pg_database,
    drop_pg_database,
    machine_line,
)


async def call(app: Any, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]):
    """One ASGI HTTP request: (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def auth(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")]


async def run(args: argparse.Namespace) -> None:
    from app.core.config import Settings
    from app.main import create_app

    pg_name, url = await create_pg_database(DEFAULT_PG_SERVER)
    prefix = f"chatapi-bench-{secrets.token_hex(4)}:"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=prefix,
        ADMIN_API_KEY=ADMIN_KEY,
        BCRYPT_ROUNDS=4,
        RATE_LIMIT_REQUESTS_PER_MINUTE=1_000_000_000,
        RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE=1_000_000_000,
        LOG_LEVEL="WARNING",
    )
    app = create_app(settings, run_embedded_worker=False)
    try:
        async with app.router.lifespan_context(app):
            await measure(app, args)
    finally:
        await drop_pg_database(DEFAULT_PG_SERVER, pg_name)
        await clear_redis(args.redis_url, prefix)


async def measure(app: Any, args: argparse.Namespace) -> None:
    st, out = await call(app, "POST", "/api/v1/clients", b'{"name": "cpu"}', auth(ADMIN_KEY))
    assert st == 201, out
    master = json.loads(out)["master_key"]
    st, out = await call(app, "POST", "/api/v1/users", b'{"external_id": "r"}', auth(master))
    assert st == 201, out
    user_id = json.loads(out)["id"]
    body = json.dumps(
        {
            "channels": ["websocket"],
            "recipients": [{"user_id": user_id}],
            "websocket": {"event": "order.shipped", "data": {"order": "A-1042", "items": 3}},
        }
    ).encode()
    counter = iter(range(10**9))

    async def one() -> None:
        headers = auth(master)
        if args.idem:
            headers.append((b"idempotency-key", f"k-{next(counter)}".encode()))
        status, answer = await call(app, "POST", "/api/v1/notifications/send", body, headers)
        if status != 202:
            raise SystemExit(f"send answered {status}: {answer[:300]!r}")

    async def batch(n: int) -> None:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await one()

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))

    await batch(args.warmup)
    await asyncio.sleep(0.5)  # background pushes of the warm-up
    profiler: Any = None
    if args.profile == "yappi":
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    elif args.profile == "cprofile":
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await batch(args.requests)
    await asyncio.sleep(0.2)  # let the background work of these requests finish
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"send_cpu: {machine_line()}")
    print(
        f"  {args.requests} sends ({'a fresh Idempotency-Key each' if args.idem else 'no key'}), "
        f"{args.concurrency} at a time: {cpu / args.requests * 1e6:.0f} µs CPU per send "
        f"(process, incl. 0.2 s idle tail), {args.requests / wall:.0f}/s wall"
    )
    if args.profile == "yappi":
        import yappi

        yappi.stop()
        stats = yappi.get_func_stats()
        stats.sort("ttot")
        rows = [
            (s.ttot, s.tsub, s.ncall, f"{s.module.split('site-packages/')[-1]}:{s.name}")
            for s in stats
        ]
        for ttot, tsub, ncall, name in rows[: args.top]:
            print(
                f"  {ttot / args.requests * 1e6:8.1f} µs incl {tsub / args.requests * 1e6:7.1f} self {ncall / args.requests:6.2f}/req  {name[-90:]}"
            )
    elif profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idem", action="store_true")
    parser.add_argument("--profile", choices=["yappi", "cprofile"])
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
