"""The Node room clients (node/room_clients.js) seen from Python, and a paced message poster
that survives failed requests: what bench/churn.py and bench/broker_restart.py share."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from node_driver import install_node_deps
from targets import NODE_DIR, SOCKETIO_PATH, TargetUnavailable, raise_nofile_limit


class RoomClients:
    """One room_clients.js process: stable clients that record each seq they receive, and
    a churn loop on other keys."""

    def __init__(
        self,
        url: str,
        auths: list[dict[str, Any] | None],
        churn_auths: list[dict[str, Any] | None] | None = None,
        *,
        reconnect: bool = False,
        concurrency: int = 50,
    ) -> None:
        self.url = url
        self.config = {
            "url": url,
            "path": f"/{SOCKETIO_PATH}",
            "auths": auths,
            "churn_auths": churn_auths or [],
            "reconnect": reconnect,
            "concurrency": concurrency,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="room-clients-"))

    async def start(self, timeout: float = 300.0) -> dict[str, Any]:
        """Start the process; answers its `connected` line once every stable client is."""
        install_node_deps()
        raise_nofile_limit()
        node = shutil.which("node")
        if node is None:
            raise TargetUnavailable("the room clients need node on PATH")
        config = self.tmp / "config.json"
        config.write_text(json.dumps(self.config))
        self.proc = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "room_clients.js"),
            "--config",
            str(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        return await self.read("connected", timeout)

    async def read(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next JSON line of type `kind`."""
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not line:
                raise RuntimeError(f"room_clients.js exited waiting for {kind}")
            with contextlib.suppress(ValueError):
                msg: dict[str, Any] = json.loads(line)
                if msg.get("type") == kind:
                    return msg

    async def send(self, command: str) -> None:
        """One command line."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((command + "\n").encode())
        await self.proc.stdin.drain()

    async def ask(self, command: str, kind: str, timeout: float = 120.0) -> dict[str, Any]:
        """Send `command`, answer its reply of type `kind`."""
        await self.send(command)
        return await self.read(kind, timeout)

    async def close(self) -> None:
        """Close every client and end the process."""
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            await self.send("exit")
            await asyncio.wait_for(self.proc.wait(), 10)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class Posted:
    """One posted message: when it was sent, what answered, the seq it got (0: none)."""

    sent_at: float
    status: int  # 0: no answer (transport error)
    seq: int


@dataclass
class PostLog:
    """Every message a paced poster sent."""

    posted: list[Posted] = field(default_factory=list)

    @property
    def stored(self) -> list[Posted]:
        """The messages the API accepted (201)."""
        return [p for p in self.posted if p.status == 201]

    @property
    def failed(self) -> list[Posted]:
        """The messages the API did not accept."""
        return [p for p in self.posted if p.status != 201]


async def post_paced(
    http: httpx.AsyncClient,
    room_id: str,
    master_key: str,
    count: int,
    rate: float,
    log: PostLog,
    *,
    payload_bytes: int = 64,
) -> PostLog:
    """POST `count` messages to the room at `rate`/s on an absolute schedule, each with
    metadata.sent_at; a failed request is recorded, not raised, and the schedule goes on."""
    path = f"/api/v1/rooms/{room_id}/messages"
    headers = {"Authorization": f"Bearer {master_key}"}
    content = "x" * max(1, payload_bytes)
    start = time.monotonic()

    async def post(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent_at = time.time()
        body = {"content": content, "metadata": {"sent_at": sent_at}}
        try:
            response = await http.post(path, json=body, headers=headers, timeout=10.0)
        except httpx.HTTPError:
            log.posted.append(Posted(sent_at, 0, 0))
            return
        seq = int(response.json().get("seq", 0)) if response.status_code == 201 else 0
        log.posted.append(Posted(sent_at, response.status_code, seq))

    await asyncio.gather(*(post(i) for i in range(count)))
    log.posted.sort(key=lambda p: p.sent_at)
    return log


async def room_last_seq(http: httpx.AsyncClient, room_id: str, master_key: str) -> int:
    """The room's newest seq, as stored (a post that timed out may still have been)."""
    response = await http.get(
        f"/api/v1/rooms/{room_id}/messages",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {master_key}"},
        timeout=60.0,
    )
    response.raise_for_status()
    data = response.json()["data"]
    return int(data[0]["seq"]) if data else 0
