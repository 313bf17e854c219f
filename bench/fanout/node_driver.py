"""The Node load driver (node/driver.js) seen from Python, and what the row scripts share.

The clients are socket.io-client (or `ws` for ChatAPI's plain WebSocket) in Node processes,
so the load generator costs far less CPU than python-socketio clients and the server under
test gets most of the 2 cores. Each driver process holds a share of the clients; the
scripts print the drivers' CPU so one can see whether they were the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targets import NODE_DIR, SOCKETIO_PATH, TargetUnavailable, raise_nofile_limit

WEBSOCKET_PATH = "/api/v1/websocket/open"


def install_node_deps() -> None:
    """`npm ci` in bench/fanout/node when socket.io, socket.io-client or ws is missing."""
    modules = NODE_DIR / "node_modules"
    if all(
        (modules / m / "package.json").exists() for m in ("socket.io", "socket.io-client", "ws")
    ):
        return
    npm = shutil.which("npm")
    if npm is None:
        raise TargetUnavailable("the Node driver needs npm on PATH")
    print(f"[node] npm ci in {NODE_DIR} ...", file=sys.stderr, flush=True)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise TargetUnavailable(f"npm ci failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class Connected:
    connected: int
    failed: int
    connect_s: float  # slowest driver's connect time
    cpu_s: float  # all drivers, during the connect
    errors: list[str]


@dataclass
class Report:
    delivered: int
    first: float
    last: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    other_events: int
    disconnected: int
    cpu_s: float  # all drivers, cumulative
    errors: list[str]


class _Driver:
    def __init__(self, proc: asyncio.subprocess.Process, config: Path) -> None:
        self.proc = proc
        self.config = config

    async def read(self, kind: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(
                    f"node driver exited ({self.proc.returncode}) waiting for {kind}"
                )
            with contextlib.suppress(ValueError):
                msg: dict[str, Any] = json.loads(line)
                if msg.get("type") == kind:
                    return msg

    async def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((command + "\n").encode())
        await self.proc.stdin.drain()


class NodeFleet:
    """C clients spread over `procs` Node driver processes."""

    def __init__(
        self,
        url: str,
        auths: list[dict[str, Any] | None],
        *,
        transport: str = "socketio",
        latency_path: tuple[str, ...] = ("sent_at",),
        event: str = "message.created",
        concurrency: int = 50,
        procs: int = 1,
    ) -> None:
        self.url = url
        self.auths = auths
        self.transport = transport
        self.latency_path = latency_path
        self.event = event
        self.concurrency = concurrency
        self.procs = max(1, min(procs, len(auths)))
        self.drivers: list[_Driver] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="node-driver-"))

    async def start(self, timeout: float = 600.0) -> Connected:
        """Start the drivers; each connects its share (`concurrency` split between them)."""
        install_node_deps()
        raise_nofile_limit()
        node = shutil.which("node")
        if node is None:
            raise TargetUnavailable("the Node driver needs node on PATH")
        per = max(1, self.concurrency // self.procs)
        for i in range(self.procs):
            config = self.tmp / f"driver{i}.json"
            config.write_text(
                json.dumps(
                    {
                        "url": self.url,
                        "transport": self.transport,
                        "path": f"/{SOCKETIO_PATH}"
                        if self.transport == "socketio"
                        else WEBSOCKET_PATH,
                        "auths": self.auths[i :: self.procs],
                        "concurrency": per,
                        "latency_path": list(self.latency_path),
                        "event": self.event,
                    }
                )
            )
            proc = await asyncio.create_subprocess_exec(
                node,
                "--max-old-space-size=4096",
                str(NODE_DIR / "driver.js"),
                "--config",
                str(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**24,
            )
            self.drivers.append(_Driver(proc, config))
        msgs = await asyncio.gather(*(d.read("connected", timeout) for d in self.drivers))
        return Connected(
            connected=sum(m["connected"] for m in msgs),
            failed=sum(m["failed"] for m in msgs),
            connect_s=max(m["connect_s"] for m in msgs),
            cpu_s=sum(m["cpu"]["user_s"] + m["cpu"]["system_s"] for m in msgs),
            errors=[e for m in msgs for e in m["errors"]][:5],
        )

    async def quiet(self, ms: int = 1000, timeout: float = 300.0) -> None:
        """Wait until no driver has seen any event for `ms`."""
        for d in self.drivers:
            await d.send(f"quiet {ms}")
        await asyncio.gather(*(d.read("quiet", timeout) for d in self.drivers))

    async def reset(self) -> None:
        for d in self.drivers:
            await d.send("reset")
        await asyncio.gather(*(d.read("reset", 30) for d in self.drivers))

    async def wait(self, expected_each_client: int, timeout: float = 120.0) -> Report:
        """Wait until every client got `expected_each_client` benchmark events (or timeout)."""
        shares = [len(self.auths[i :: self.procs]) for i in range(self.procs)]
        for d, share in zip(self.drivers, shares, strict=True):
            await d.send(f"wait {share * expected_each_client} {int(timeout * 1000)}")
        msgs = await asyncio.gather(*(d.read("report", timeout + 30) for d in self.drivers))
        return _merge(msgs)

    async def wait_counts(self, counts: list[int], timeout: float = 120.0) -> Report:
        """Wait until driver i got counts[i] benchmark events in all (or timeout)."""
        for d, count in zip(self.drivers, counts, strict=True):
            await d.send(f"wait {count} {int(timeout * 1000)}")
        msgs = await asyncio.gather(*(d.read("report", timeout + 30) for d in self.drivers))
        return _merge(msgs)

    async def report(self) -> Report:
        for d in self.drivers:
            await d.send("report")
        return _merge(await asyncio.gather(*(d.read("report", 60) for d in self.drivers)))

    async def close(self) -> None:
        for d in self.drivers:
            with contextlib.suppress(Exception):
                await d.send("exit")
        for d in self.drivers:
            try:
                await asyncio.wait_for(d.proc.wait(), 30)
            except (TimeoutError, asyncio.TimeoutError):
                with contextlib.suppress(ProcessLookupError):
                    d.proc.kill()
                await d.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _merge(msgs: list[dict[str, Any]]) -> Report:
    # Percentiles cannot be merged exactly; with one driver (the default) they are exact, with
    # several the worst driver's p50/p99 is reported (drivers hold equal shares).
    def worst(key: str) -> float:
        vals = [m[key] for m in msgs if isinstance(m[key], (int, float)) and m[key] is not None]
        return max(vals) if vals else math.nan

    firsts = [m["first"] for m in msgs if m["first"]]
    return Report(
        delivered=sum(m["delivered"] for m in msgs),
        first=min(firsts) if firsts else 0.0,
        last=max(m["last"] for m in msgs),
        p50_ms=worst("p50_ms"),
        p99_ms=worst("p99_ms"),
        max_ms=worst("max_ms"),
        other_events=sum(m["other_events"] for m in msgs),
        disconnected=sum(m["disconnected"] for m in msgs),
        cpu_s=sum(m["cpu"]["user_s"] + m["cpu"]["system_s"] for m in msgs),
        errors=[e for m in msgs for e in m["errors"]][:5],
    )


def ratio(ours: float, base: float) -> str:
    """`ours / base` as "0.42x" (or "n/a")."""
    if not base or math.isnan(ours) or math.isnan(base):
        return "n/a"
    return f"{ours / base:.2f}x"
