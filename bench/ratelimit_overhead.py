"""Rate limiter overhead: what counting a request per key and per client costs.

Two measurements, both on this machine:

1. The limiter alone: `RateLimitPolicies.hit_request(principal)` (the call the auth
   dependency makes) timed over N calls, in memory (embedded) and on Redis (two INCRs
   sent together: one round trip). Client limits are cached as in steady state.
2. End to end: two `chatapi serve` processes on one fresh SQLite database, identical but
   for RATE_LIMIT_ENABLED (true / false), each sent N sequential keep-alive requests of
   `GET /api/v1/clients/me` with the same master key, interleaved in blocks (ABBA), so
   machine noise hits both; client-side p50/p90 side by side.

Run from the repository root:

    python bench/ratelimit_overhead.py                         # Redis on 127.0.0.1:6379
    python bench/ratelimit_overhead.py --requests 5000 --redis ""   # memory only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._support import ADMIN_KEY, free_port, machine_line, percentile

ROOT = Path(__file__).resolve().parents[1]


async def limiter_alone(redis_url: str | None, calls: int) -> list[float]:
    """Seconds per hit_request call."""
    from app.auth.principal import ALL_SCOPES, KeyKind, Principal
    from app.core.broadcast import MemoryBroadcast
    from app.core.config import Settings
    from app.core.db import Database
    from app.ratelimit.policies import ClientLimits, RateLimitPolicies
    from app.ratelimit.storage import create_storage

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL="sqlite+aiosqlite:///:memory:",
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX="chatapi-bench:",
        RATE_LIMIT_REQUESTS_PER_MINUTE=10_000_000,
        RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE=10_000_000,
    )
    db = Database(settings.DATABASE_URL)
    policies = RateLimitPolicies(settings, create_storage(settings), db, MemoryBroadcast())
    policies._cache["bench-client"] = (ClientLimits.defaults(settings), float("inf"))
    principal = Principal(
        kind=KeyKind.master, key_id="bench-key", client_id="bench-client", scopes=ALL_SCOPES
    )
    for _ in range(200):  # warm up connections and code paths
        await policies.hit_request(principal)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await policies.hit_request(principal)
        samples.append(time.perf_counter() - started)
    await db.dispose()
    return sorted(samples)


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            try:
                if (await http.get(f"{base}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base} did not become ready")


async def end_to_end(requests: int, block: int) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="chatapi-bench-rl-"))
    base_env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/bench.db",
        "REDIS_URL": "",
        "ADMIN_API_KEY": ADMIN_KEY,
        "ENVIRONMENT": "local",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-secret-key-bench-secret-key-0123",
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000000",
        "RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE": "100000000",
    }
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "migrate"],
        env=base_env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    ports = {"limiter on": free_port(), "limiter off": free_port()}
    procs = [
        serve({**base_env, "RATE_LIMIT_ENABLED": "true"}, ports["limiter on"], folder / "on.log"),
        serve(
            {**base_env, "RATE_LIMIT_ENABLED": "false"}, ports["limiter off"], folder / "off.log"
        ),
    ]
    try:
        bases = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        for base in bases.values():
            await wait_ready(base)
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{bases['limiter on']}/api/v1/clients",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            key = {"Authorization": f"Bearer {created.json()['master_key']}"}
        clients = {k: httpx.AsyncClient(base_url=b, headers=key) for k, b in bases.items()}
        samples: dict[str, list[float]] = {k: [] for k in bases}
        for client in clients.values():  # warm: key cache, connections
            for _ in range(100):
                (await client.get("/api/v1/clients/me")).raise_for_status()
        order = ["limiter on", "limiter off"]
        done = 0
        while done < requests:
            for name in order:
                for _ in range(block):
                    started = time.perf_counter()
                    r = await clients[name].get("/api/v1/clients/me")
                    samples[name].append(time.perf_counter() - started)
                    assert r.status_code == 200, r.text
            order.reverse()  # ABBA
            done += block
        for client in clients.values():
            await client.aclose()
        return {k: sorted(v) for k, v in samples.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} µs"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    print(machine_line())
    print("1. the limiter alone (hit_request: per key + per client)")
    stores = [("memory", None)] + ([("redis", args.redis)] if args.redis else [])
    for name, url in stores:
        s = await limiter_alone(url, args.calls)
        print(
            f"   {name:7} p50 {us(percentile(s, 50))}  p90 {us(percentile(s, 90))}  "
            f"p99 {us(percentile(s, 99))}  mean {us(statistics.fmean(s))}"
        )
    print(f"2. end to end, GET /api/v1/clients/me, {args.requests} requests each, ABBA")
    results = await end_to_end(args.requests, args.block)
    for name, s in results.items():
        print(
            f"   {name:11} p50 {us(percentile(s, 50))}  p90 {us(percentile(s, 90))}  "
            f"p99 {us(percentile(s, 99))}"
        )
    delta = percentile(results["limiter on"], 50) - percentile(results["limiter off"], 50)
    print(f"   p50 difference (on - off): {us(delta)}")


if __name__ == "__main__":
    asyncio.run(main())
