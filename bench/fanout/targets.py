"""The servers bench/fanout measures: each starts as a subprocess on a free 127.0.0.1 port.

A target knows how to start and stop its server, how to prepare C clients (the `auth`
each Socket.IO client sends), how to make the server emit M `message.created` events to
all of them, where in an event the send time is, and how to read the server's RSS and
CPU time.

- `bare`: bare_sio_server.py, a bare python-socketio broadcast server on uvicorn.
- `node`: node/server.js, a Node socket.io 4.x broadcast server (npm deps installed on first use).
- `chatapi`: `chatapi serve` on a fresh SQLite file, set up through the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for bench._support

from bench._support import LIFTED_QUOTAS  # noqa: E402

NODE_DIR = HERE / "node"
HOST = "127.0.0.1"
SOCKETIO_PATH = "sockets"
EVENT = "message.created"
TARGET_NAMES = ("bare", "node", "chatapi")


class TargetUnavailable(RuntimeError):
    """The target cannot be measured (it did not start, or Socket.IO does not connect)."""


@dataclass(frozen=True)
class TriggerStats:
    """How the emit request(s) went: the send window and the requests made."""

    started: float  # time.time() just before the first request
    finished: float  # time.time() when the last request answered
    requests: int


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def proc_rss_bytes(pid: int) -> int:
    """VmRSS of `pid` from /proc, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        raw = stat.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _check(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.text[:500]}")
    return response.json()


class Target(ABC):
    """One server under test, run as a subprocess."""

    name: str
    # Where the send time (time.time() seconds) is inside a `message.created` event's data.
    latency_path: tuple[str, ...] = ("sent_at",)

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"fanout-{self.name}-"))
        self.log_path = self.workdir / "server.log"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=120.0)

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line."""

    def environment(self) -> dict[str, str]:
        """The server's environment."""
        return dict(os.environ)

    @property
    def ready_path(self) -> str:
        """A GET path that answers 200 once the server listens."""
        return "/rss"

    def install(self) -> None:  # noqa: B027 - optional hook
        """Anything to install before the first start."""

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _spawn(self) -> subprocess.Popen[bytes]:
        raise_nofile_limit()  # the server inherits the raised soft limit
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the whole group
            )

    async def start(self, timeout: float = 90.0) -> None:
        """Start the server and wait until it answers."""
        await asyncio.to_thread(self.install)
        self.proc = proc = self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise TargetUnavailable(
                    f"{self.name} server exited with {proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.TransportError):
                response = await self.http.get(self.ready_path, timeout=2.0)
                if response.status_code == 200:
                    return
            if time.monotonic() > deadline:
                await self.stop()
                raise TargetUnavailable(f"{self.name} server not ready after {timeout:.0f}s")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its work dir."""
        await self.http.aclose()
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 15)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @abstractmethod
    async def prepare(
        self, clients: int, *, room: bool = True, direct: bool = False
    ) -> list[dict[str, Any] | None]:
        """Whatever C clients need server-side (with `room`, all in one room); answers the
        `auth` each client connects with. `direct`: a quicker set-up where the target has
        one (ChatAPI: rows written straight into its database)."""

    @abstractmethod
    async def trigger(self, count: int, payload_bytes: int, rate: float = 0.0) -> TriggerStats:
        """Make the server emit `count` `message.created` events to every prepared client:
        all at once (rate 0), or `rate` messages per second."""

    async def rss(self) -> int:
        """The server's RSS in bytes."""
        return proc_rss_bytes(self.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds the server process has used so far."""
        return proc_cpu_seconds(self.pid)


class _BroadcastServer(Target):
    """A baseline with POST /trigger and GET /rss (bare python-socketio and Node)."""

    async def prepare(
        self, clients: int, *, room: bool = True, direct: bool = False
    ) -> list[dict[str, Any] | None]:
        # Every connection joins room "bench" server-side; there is nothing to create.
        return [None] * clients

    async def trigger(self, count: int, payload_bytes: int, rate: float = 0.0) -> TriggerStats:
        body: dict[str, float] = {"count": count, "payload_bytes": payload_bytes}
        if rate > 0:
            body["interval_ms"] = 1000.0 / rate
        started = time.time()
        response = await self.http.post("/trigger", json=body, timeout=None)
        _check(response, f"{self.name} POST /trigger")
        return TriggerStats(started, time.time(), 1)

    async def rss(self) -> int:
        body = _check(await self.http.get("/rss"), f"{self.name} GET /rss")
        return int(body["rss"])


class BareTarget(_BroadcastServer):
    name = "bare"

    def command(self) -> list[str]:
        return [sys.executable, str(HERE / "bare_sio_server.py"), "--port", str(self.port)]


class NodeTarget(_BroadcastServer):
    name = "node"

    def install(self) -> None:
        if (NODE_DIR / "node_modules" / "socket.io" / "package.json").exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise TargetUnavailable("node target needs npm on PATH")
        verb = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
        print(f"[node] npm {verb} in {NODE_DIR} ...", flush=True)
        done = subprocess.run(
            [npm, verb, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise TargetUnavailable(f"npm {verb} failed:\n{done.stdout}\n{done.stderr}")

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise TargetUnavailable("node target needs node on PATH")
        return [node, str(NODE_DIR / "server.js"), "--port", str(self.port)]


def _chatapi_command() -> list[str]:
    beside = Path(sys.executable).with_name("chatapi")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("chatapi")
    if found is not None:
        return [found]
    return [sys.executable, "-m", "app.cli"]


class ChatapiTarget(Target):
    """`chatapi serve` (embedded mode: SQLite, no Redis), set up through the REST API."""

    name = "chatapi"
    latency_path = ("metadata", "sent_at")

    def __init__(self, *, post_concurrency: int = 1, setup_concurrency: int = 16) -> None:
        super().__init__()
        self.admin_key = secrets.token_urlsafe(32)
        self.post_concurrency = max(1, post_concurrency)
        self.setup_concurrency = max(1, setup_concurrency)
        self.master_key = ""
        self.room_id = ""

    @property
    def ready_path(self) -> str:
        return "/health/live"

    def command(self) -> list[str]:
        return [*_chatapi_command(), "serve", "--host", HOST, "--port", str(self.port)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Embedded mode, nothing reported anywhere: only 127.0.0.1 is talked to.
        for name in ("REDIS_URL", "SENTRY_DSN", "POSTGRES_SERVER"):
            env.pop(name, None)
        env.update(
            DATABASE_URL=f"sqlite+aiosqlite:///{self.workdir / 'bench.db'}",
            ADMIN_API_KEY=self.admin_key,
            BCRYPT_ROUNDS="4",
            LOG_LEVEL="WARNING",
            **LIFTED_QUOTAS,
        )
        return env

    def _master(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    async def _concurrently(self, jobs: list[Any], limit: int) -> list[Any]:
        semaphore = asyncio.Semaphore(limit)

        async def run(job: Any) -> Any:
            async with semaphore:
                return await job

        return await asyncio.gather(*(run(job) for job in jobs))

    async def prepare(
        self, clients: int, *, room: bool = True, direct: bool = False
    ) -> list[dict[str, Any] | None]:
        """One tenant, C users, (with `room`) one channel room with all of them, and one user
        key each. `direct`: the users and keys are inserted into the server's database in
        one statement each instead of 2 C REST calls (see `_insert_users_and_keys`); the
        room is still made through REST."""
        created = _check(
            await self.http.post(
                "/api/v1/clients",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {self.admin_key}"},
            ),
            "POST /api/v1/clients",
        )
        self.master_key = created["master_key"]
        _check(
            await self.http.patch(
                "/api/v1/clients/me", json={"max_room_members": 100_000}, headers=self._master()
            ),
            "PATCH /api/v1/clients/me",
        )
        if direct:
            user_ids, keyed = await self._insert_users_and_keys(str(created["id"]), clients)
            if room:
                await self._create_room(user_ids)
            return keyed

        async def create_user(i: int) -> str:
            response = await self.http.post(
                "/api/v1/users", json={"external_id": f"u{i}"}, headers=self._master()
            )
            return str(_check(response, "POST /api/v1/users")["id"])

        user_ids: list[str] = await self._concurrently(
            [create_user(i) for i in range(clients)], self.setup_concurrency
        )
        if room:
            await self._create_room(user_ids)

        async def login(user_id: str) -> dict[str, Any] | None:
            response = await self.http.post(
                "/api/v1/auth/login", json={"user_id": user_id}, headers=self._master()
            )
            return {"api_key": _check(response, "POST /api/v1/auth/login")["api_key"]}

        auths: list[dict[str, Any] | None] = await self._concurrently(
            [login(user_id) for user_id in user_ids], self.setup_concurrency
        )
        return auths

    async def _insert_users_and_keys(
        self, client_id: str, count: int
    ) -> tuple[list[str], list[dict[str, Any] | None]]:
        """`count` users and one live user key each (every scope), written with one
        multi-row INSERT per table through the app's own models, into the database the
        server runs on; answers the user ids and each user's `auth`.

        Why: through REST, N users and N logins cost 2N requests and N bcrypt hashes in
        the server (minutes for 10,000 on 2 cores). The rows are what `POST /users` and
        `/auth/login` store. The keys share one secret (one bcrypt hash, at the server's
        BCRYPT_ROUNDS) under distinct key ids, so each presented key is distinct. What the
        server then does on connect is its real path for a key it did not issue itself
        (e.g. issued by another process or before a restart): read the row, verify the
        hash once (one wrong-secret limiter hit), cache it. Connect-time figures
        (connect_1000.py) keep the REST set-up: there a login's key skips that verify.
        """
        from sqlalchemy import insert
        from sqlalchemy.ext.asyncio import create_async_engine

        from app.auth.models import ApiKey
        from app.auth.principal import ALL_SCOPES, KeyKind
        from app.auth.secrets import KEY_PREFIX, hash_secret
        from app.core.clock import utcnow
        from app.core.ids import new_id
        from app.users.models import User

        secret = secrets.token_urlsafe(32)
        secret_hash = await asyncio.to_thread(
            hash_secret, secret, int(self.environment()["BCRYPT_ROUNDS"])
        )
        now = utcnow()
        users, keys, user_ids, auths = [], [], [], []
        for i in range(count):
            user_id, key_id = new_id(), secrets.token_hex(8)
            users.append(
                {"id": user_id, "client_id": client_id, "external_id": f"u{i}",
                 "metadata": {}, "created_at": now, "updated_at": now}
            )  # fmt: skip
            keys.append(
                {"id": key_id, "client_id": client_id, "kind": KeyKind.user.value,
                 "user_id": user_id, "scopes": sorted(ALL_SCOPES), "secret_hash": secret_hash,
                 "created_at": now}
            )  # fmt: skip
            user_ids.append(user_id)
            auths.append({"api_key": f"{KEY_PREFIX}_{key_id}_{secret}"})
        engine = create_async_engine(self.environment()["DATABASE_URL"])
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(User.__table__), users)  # type: ignore[arg-type]
                await conn.execute(insert(ApiKey.__table__), keys)  # type: ignore[arg-type]
        finally:
            await engine.dispose()
        return user_ids, auths  # type: ignore[return-value]

    async def _create_room(self, user_ids: list[str]) -> None:
        first, rest = user_ids[:10_000], user_ids[10_000:]  # RoomCreate takes <= 10,000 ids
        created = _check(
            await self.http.post(
                "/api/v1/rooms",
                json={"name": "bench", "type": "channel", "member_ids": first},
                headers=self._master(),
            ),
            "POST /api/v1/rooms",
        )
        self.room_id = created["id"]
        for start in range(0, len(rest), 1000):
            _check(
                await self.http.post(
                    f"/api/v1/rooms/{self.room_id}/members",
                    json={"user_ids": rest[start : start + 1000]},
                    headers=self._master(),
                ),
                "POST /api/v1/rooms/{id}/members",
            )

    async def trigger(self, count: int, payload_bytes: int, rate: float = 0.0) -> TriggerStats:
        """POST `count` messages with the master key (`post_concurrency` at a time, paced at
        `rate` per second when given); sent_at is taken just before each request."""
        content = "x" * max(1, payload_bytes)
        path = f"/api/v1/rooms/{self.room_id}/messages"
        headers = self._master()
        start = time.monotonic()

        async def post(i: int) -> None:
            if rate > 0:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            body = {"content": content, "metadata": {"sent_at": time.time()}}
            _check(await self.http.post(path, json=body, headers=headers), f"POST {path}")

        started = time.time()
        if self.post_concurrency == 1:
            for i in range(count):
                await post(i)
        else:
            await self._concurrently([post(i) for i in range(count)], self.post_concurrency)
        return TriggerStats(started, time.time(), count)


def make_target(name: str, *, post_concurrency: int = 1) -> Target:
    """A fresh (not started) target by name."""
    if name == "bare":
        return BareTarget()
    if name == "node":
        return NodeTarget()
    if name == "chatapi":
        return ChatapiTarget(post_concurrency=post_concurrency)
    raise ValueError(f"unknown target {name!r}; choose from {', '.join(TARGET_NAMES)}")
