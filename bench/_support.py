"""Shared plumbing of the bench scripts: scratch databases, server subprocesses, percentiles.

Not a benchmark itself. Every helper talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
ADMIN_KEY = "bench-admin-key-" + secrets.token_hex(16)
#: Environment of every ChatAPI process a bench starts. The rate limiter stays on (its
#: counting is part of every measured request) but the deployment-default quotas are
#: lifted: a bench pushes thousands of requests a minute through one key, and webhooks at
#: hundreds a second to one endpoint, which the defaults (1,200 requests a minute per key,
#: 20 webhooks a second per endpoint) rightly refuse or defer.
LIFTED_QUOTAS = {
    "RATE_LIMIT_REQUESTS_PER_MINUTE": "1000000000",
    "RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE": "1000000000",
    "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT": "1000000",
}


class BenchError(RuntimeError):
    """A bench could not run; the message says why."""


def require_local(url: str) -> str:
    """`url` unchanged, or BenchError when it points anywhere but this machine."""
    host = urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise BenchError(f"benches only talk to 127.0.0.1; refusing {host!r} in {url!r}")
    return url


def _asyncpg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def _with_database(server_url: str, database: str) -> str:
    parts = urlsplit(_asyncpg_dsn(server_url))
    query = f"?{parts.query}" if parts.query else ""
    return f"postgresql+asyncpg://{parts.netloc}/{database}{query}"


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """A plain DSN for asyncpg from a `postgresql+asyncpg://` URL."""
    return _asyncpg_dsn(sqlalchemy_url)


async def create_pg_database(server_url: str, prefix: str | None = None) -> tuple[str, str]:
    """Create and migrate a fresh database; return (name, SQLAlchemy URL). Its name starts
    with `prefix`, else $BENCH_DB_PREFIX (run_all.sh's own, to find what an interrupted
    script left), else "chatapi_bench"."""
    from app.core.migrations import upgrade

    prefix = prefix or os.environ.get("BENCH_DB_PREFIX") or "chatapi_bench"
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(_asyncpg_dsn(require_local(server_url)))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
    except BaseException:
        await drop_pg_database(server_url, name)
        raise
    return name, url


async def drop_pg_database(server_url: str, name: str) -> None:
    """Drop the database, disconnecting whoever still uses it."""
    conn = await asyncpg.connect(_asyncpg_dsn(require_local(server_url)))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def create_sqlite_database(folder: Path) -> str:
    """A migrated SQLite file in `folder`; its SQLAlchemy URL."""
    from app.core.migrations import upgrade

    url = f"sqlite+aiosqlite:///{folder / 'chatapi_bench.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


async def drop_leftover_databases(server_url: str, prefix: str) -> list[str]:
    """Drop every database whose name starts with `prefix` + "_" (what scripts stopped in
    their cleanup left behind); answers their names."""
    conn = await asyncpg.connect(_asyncpg_dsn(require_local(server_url)))
    try:
        names = [
            str(r[0])
            for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix + "_"
            )
        ]
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    return names


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def machine_line() -> str:
    """CPUs and load average, so a reader can judge how noisy the machine was."""
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return f"machine: {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start"


def progress(tag: str, what: str) -> None:
    """A timestamped progress line on stderr: the log of a run that was stopped for
    overrunning its time limit shows which phase was slow."""
    print(f"  [{tag}] {time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    """Seconds as a short millisecond figure."""
    return f"{seconds * 1000:.3f}"


class ServerProcess:
    """`python <script> --serve <json>` in a child process: one uvicorn server on a free port.

    The child builds its app from the JSON spec (see each script's `serve`), so the server
    has a CPU and a GIL of its own, apart from the load-generating client.
    """

    def __init__(self, script: Path, spec: dict[str, object], label: str) -> None:
        self.port = free_port()
        self.label = label
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._spec = {**spec, "port": self.port}
        self._script = script
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            prefix=f"chatapi-bench-{label}-", suffix=".log", delete=False
        )
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self, ready_path: str, timeout: float = 60.0) -> None:
        """Start the child and wait until `ready_path` answers 200."""
        self._proc = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise BenchError(f"{self.label} server exited early:\n{self.log_tail()}")
                try:
                    if (await client.get(ready_path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise BenchError(f"{self.label} server not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **LIFTED_QUOTAS, "PYTHONPATH": str(REPO_ROOT)}
        return subprocess.Popen(
            [sys.executable, str(self._script), "--serve", json.dumps(self._spec)],
            cwd=str(REPO_ROOT),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _discard_log(self) -> None:
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    @property
    def pid(self) -> int:
        """The child's process id (for py-spy); BenchError before start()."""
        if self._proc is None:
            raise BenchError(f"{self.label} server not started")
        return self._proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU the child has used so far (Linux /proc); NaN elsewhere."""
        if self._proc is None:
            return float("nan")
        try:
            stat = Path(f"/proc/{self._proc.pid}/stat").read_text()
        except OSError:
            return float("nan")
        fields = stat.rsplit(")", 1)[1].split()
        # fields[0] is the state (stat field 3): utime and stime are stat fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 30) -> str:
        """The end of the child's output."""
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop, so the lifespan closes), then SIGKILL if stuck."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        await asyncio.to_thread(self._discard_log)


def run_uvicorn(app: object, port: int) -> None:
    """Serve `app` on 127.0.0.1:`port` like `chatapi serve` does (one worker)."""
    import uvicorn

    uvicorn.run(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_config=None,
        proxy_headers=True,
        access_log=False,
    )


async def clear_redis(url: str, prefix: str) -> None:
    """Delete every key under `prefix` on the (local) Redis at `url`."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(require_local(url))
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


# --- Machine-readable results: what bench/run_all.sh tabulates ------------------------------


@dataclass(frozen=True)
class Figure:
    """One row of run_all's table: a figure of ours beside its baseline and its goal.

    The text fields are what the table shows (units included); `ratio` and `met` are kept
    as values so the table can be sorted or checked by a program. `met` is None when the
    figure has no goal (or its value could not be measured).
    """

    figure: str  # the name for it: "P1", "#15 row 3", ...
    what: str  # what is measured, in a few words
    ours: str
    baseline: str
    ratio: float | None
    goal: str
    met: bool | None
    driver_cpu: str


def meets(value: float | None, op: str, target: float) -> bool | None:
    """`value op target` for op in {">=", "<="}; None when the value is missing or NaN."""
    if value is None or math.isnan(value):
        return None
    if op == ">=":
        return value >= target
    if op == "<=":
        return value <= target
    raise ValueError(f"unknown comparison {op!r}")


def safe_ratio(ours: float, base: float) -> float | None:
    """ours / base, or None when either is missing, zero or NaN."""
    if not base or math.isnan(ours) or math.isnan(base):
        return None
    return ours / base


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """The `--json PATH` option every figure script takes."""
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the figures as JSON here (what bench/run_all.sh tabulates)",
    )


def write_figures(path: str | None, script: str, figures: Sequence[Figure]) -> None:
    """Write `figures` to `path` (nothing when None) with the command and the machine."""
    if not path:
        return
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    doc = {
        "script": script,
        "argv": sys.argv[1:],
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_at_end": load,
        "figures": [asdict(f) for f in figures],
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
