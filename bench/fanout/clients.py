"""Many python-socketio AsyncClients (websocket transport only), spread over worker processes.

The parent (`ClientFleet`, blocking calls, run it in a thread from async code) talks to each
worker over a Pipe:

    worker -> {"kind": "connected", ...}        once its share of clients is connected
    parent -> {"kind": "settle", ...}            wait until no non-benchmark event arrives for a while
    worker -> {"kind": "settled", ...}
    parent -> {"kind": "reset"}                  forget what was received (after a warm-up)
    worker -> {"kind": "reset"}
    parent -> {"kind": "finish", ...}            wait for `expected` events per client (or timeout)
    worker -> {"kind": "result", ...}            latencies and counters
    parent -> {"kind": "close"}                  disconnect everything and exit
    worker -> {"kind": "closed"}

Every `message.created` received is timed on arrival: latency = time.time() - the event's
send time (read at `latency_path` inside the data; server and clients share one clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import resource
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker process connects."""

    index: int
    url: str
    socketio_path: str
    event: str
    latency_path: tuple[str, ...]
    auths: list[dict[str, Any] | None]
    connect_concurrency: int = 50
    connect_timeout: float = 60.0
    connect_attempts: int = 3


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Worker:
    """The clients of one process and what they received."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        n = len(spec.auths)
        self.clients: list[socketio.AsyncClient | None] = [None] * n
        self.counts = [0] * n
        self.latencies = array("d")
        self.first_recv = 0.0
        self.last_recv = 0.0
        self.bad_events = 0  # events whose send time could not be read
        self.other_events = 0  # any other event (e.g. presence while others connect)
        self.last_other = time.monotonic()
        self.disconnects = 0
        self.disconnect_reasons: Counter[str] = Counter()  # what servers say before closing
        self.closing = False
        self.errors: list[str] = []

    def _on_event(self, i: int) -> Callable[[Any], None]:
        path = self.spec.latency_path
        latencies, counts = self.latencies, self.counts

        def on_event(data: Any) -> None:
            now = time.time()
            counts[i] += 1
            try:
                sent = data
                for key in path:
                    sent = sent[key]
                latencies.append(now - float(sent))
            except (KeyError, TypeError, ValueError):
                self.bad_events += 1
            if not self.first_recv:
                self.first_recv = now
            self.last_recv = now

        return on_event

    def _on_other(self, *_: Any) -> None:
        self.other_events += 1
        self.last_other = time.monotonic()

    def _on_disconnect(self, reason: Any = None) -> None:
        if not self.closing:
            self.disconnects += 1
            # engineio's view: "server disconnect", "transport error" (e.g. ping timeout), ...
            self.disconnect_reasons[f"client saw: {reason}"] += 1

    def _on_disconnect_reason(self, data: Any = None) -> None:
        # ChatAPI says why it closes a connection (e.g. 4408 slow consumer) in this event.
        self.other_events += 1
        if isinstance(data, dict):
            self.disconnect_reasons[f"server said: {data.get('code')} {data.get('reason')}"] += 1
        else:
            self.disconnect_reasons[f"server said: {data}"] += 1

    async def _connect_one(self, i: int, semaphore: asyncio.Semaphore) -> bool:
        spec = self.spec
        async with semaphore:
            for attempt in range(spec.connect_attempts):
                client = socketio.AsyncClient(reconnection=False)
                client.on(spec.event, self._on_event(i))
                client.on("*", self._on_other)
                client.on("disconnect", self._on_disconnect)
                client.on("disconnect_reason", self._on_disconnect_reason)
                try:
                    await client.connect(
                        spec.url,
                        socketio_path=spec.socketio_path,
                        transports=["websocket"],
                        auth=spec.auths[i],
                        wait_timeout=spec.connect_timeout,
                    )
                except Exception as exc:  # any failure is reported, then retried
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    with contextlib.suppress(Exception):
                        await client.disconnect()
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                self.clients[i] = client
                return True
        return False

    async def connect_all(self) -> dict[str, Any]:
        started = time.monotonic()
        semaphore = asyncio.Semaphore(self.spec.connect_concurrency)
        done = await asyncio.gather(
            *(self._connect_one(i, semaphore) for i in range(len(self.spec.auths)))
        )
        return {
            "kind": "connected",
            "ok": sum(done),
            "failed": len(done) - sum(done),
            "errors": self.errors,
            "seconds": time.monotonic() - started,
        }

    async def settle(self, quiet: float, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        # Polling on a deadline is the point here: "quiet" is the absence of events.
        while time.monotonic() < deadline and time.monotonic() - self.last_other < quiet:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return {
            "kind": "settled",
            "other_events": self.other_events,
            "disconnects": self.disconnects,
            "cpu_seconds": _cpu_seconds(),
        }

    def reset(self) -> dict[str, Any]:
        """Forget every benchmark event received so far (after a warm-up)."""
        self.counts[:] = [0] * len(self.counts)
        del self.latencies[:]
        self.first_recv = self.last_recv = 0.0
        self.bad_events = 0
        return {"kind": "reset", "cpu_seconds": _cpu_seconds()}

    async def finish(self, expected: int, timeout: float, idle: float) -> dict[str, Any]:
        """Wait until every connected client has `expected` events, or give up."""
        connected = [i for i, c in enumerate(self.clients) if c is not None]
        want = expected * len(connected)
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        seen = -1
        while True:
            got = sum(self.counts)
            if got >= want or time.monotonic() > deadline:
                break
            if got != seen:
                seen, quiet_since = got, time.monotonic()
            elif time.monotonic() - quiet_since > idle:
                break
            await asyncio.sleep(0.02)
        return {
            "kind": "result",
            "latencies": self.latencies.tobytes(),
            "received": sum(self.counts),
            "clients": len(connected),
            "complete": sum(1 for i in connected if self.counts[i] >= expected),
            "first_recv": self.first_recv,
            "last_recv": self.last_recv,
            "bad_events": self.bad_events,
            "disconnects": self.disconnects,
            "disconnect_reasons": dict(self.disconnect_reasons),
            "cpu_seconds": _cpu_seconds(),
        }

    async def close(self) -> None:
        self.closing = True
        semaphore = asyncio.Semaphore(200)

        async def disconnect(client: socketio.AsyncClient) -> None:
            async with semaphore:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.disconnect(), 10)

        await asyncio.gather(*(disconnect(c) for c in self.clients if c is not None))


async def _serve(spec: WorkerSpec, conn: multiprocessing.connection.Connection) -> None:
    worker = _Worker(spec)
    loop = asyncio.get_running_loop()
    try:
        conn.send(await worker.connect_all())
        while True:
            try:
                msg: dict[str, Any] = await loop.run_in_executor(None, conn.recv)
            except EOFError:  # the parent went away
                break
            kind = msg["kind"]
            if kind == "settle":
                conn.send(await worker.settle(msg["quiet"], msg["limit"]))
            elif kind == "reset":
                conn.send(worker.reset())
            elif kind == "finish":
                conn.send(await worker.finish(msg["expected"], msg["timeout"], msg["idle"]))
            elif kind == "close":
                break
    except Exception as exc:  # reported to the parent, which raises it
        with contextlib.suppress(OSError):
            conn.send({"kind": "error", "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await worker.close()
        with contextlib.suppress(OSError):
            conn.send({"kind": "closed"})


def worker_main(spec: WorkerSpec, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of one client process."""
    _raise_nofile()
    # Dropped connections are counted; engineio's per-client error lines would flood stderr.
    for name in ("engineio.client", "socketio.client"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(spec, conn))


@dataclass
class Delivery:
    """Everything the workers received after a trigger, merged."""

    latencies: array[float]
    received: int
    clients: int
    complete: int
    first_recv: float
    last_recv: float
    bad_events: int
    disconnects: int
    disconnect_reasons: dict[str, int]
    client_cpu_seconds: float


@dataclass
class Connected:
    ok: int
    failed: int
    seconds: float
    errors: list[str] = field(default_factory=list)


class ClientFleet:
    """C Socket.IO clients in P processes (blocking API: call it through asyncio.to_thread)."""

    def __init__(
        self,
        *,
        url: str,
        socketio_path: str,
        event: str,
        latency_path: tuple[str, ...],
        auths: list[dict[str, Any] | None],
        procs: int,
        connect_concurrency: int = 50,
    ) -> None:
        procs = max(1, min(procs, len(auths)))
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[multiprocessing.connection.Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for index in range(procs):
            parent, child = ctx.Pipe()
            spec = WorkerSpec(
                index=index,
                url=url,
                socketio_path=socketio_path,
                event=event,
                latency_path=latency_path,
                auths=auths[index::procs],
                connect_concurrency=connect_concurrency,
            )
            proc = ctx.Process(target=worker_main, args=(spec, child), daemon=True)
            self.conns.append(parent)
            self.procs.append(proc)
        self.cpu_mark = 0.0
        self.settle_disconnects = 0  # clients dropped while connecting/settling

    def _gather(self, kind: str, timeout: float) -> list[dict[str, Any]]:
        """One `kind` message from every worker."""
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(answers) < len(self.conns):
            pending = [c for i, c in enumerate(self.conns) if i not in answers]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} client worker(s) gave no {kind!r} in time")
            for ready in multiprocessing.connection.wait(pending, timeout=remaining):
                index = next(i for i, c in enumerate(self.conns) if c is ready)
                try:
                    msg: dict[str, Any] = self.conns[index].recv()
                except EOFError:
                    raise RuntimeError(f"client worker {index} died") from None
                if msg["kind"] == "error":
                    raise RuntimeError(f"client worker {index}: {msg['error']}")
                if msg["kind"] != kind:
                    raise RuntimeError(f"client worker {index}: expected {kind!r}, got {msg}")
                answers[index] = msg
        return [answers[i] for i in range(len(self.conns))]

    def start(self, timeout: float = 600.0) -> Connected:
        """Spawn the workers and wait until each has connected its clients."""
        for proc in self.procs:
            proc.start()
        answers = self._gather("connected", timeout)
        errors = [e for a in answers for e in a["errors"]]
        return Connected(
            ok=sum(a["ok"] for a in answers),
            failed=sum(a["failed"] for a in answers),
            seconds=max(a["seconds"] for a in answers),
            errors=errors[:5],
        )

    def settle(self, quiet: float = 1.0, limit: float = 120.0) -> int:
        """Wait until no worker has seen a non-benchmark event for `quiet` seconds; answers
        how many such events (e.g. presence) the clients received so far."""
        for conn in self.conns:
            conn.send({"kind": "settle", "quiet": quiet, "limit": limit})
        answers = self._gather("settled", limit + 30)
        self.cpu_mark = sum(a["cpu_seconds"] for a in answers)
        self.settle_disconnects = sum(a["disconnects"] for a in answers)
        return sum(a["other_events"] for a in answers)

    def reset(self) -> None:
        """Forget the benchmark events received so far (e.g. a warm-up's)."""
        for conn in self.conns:
            conn.send({"kind": "reset"})
        self.cpu_mark = sum(a["cpu_seconds"] for a in self._gather("reset", 60))

    def finish(self, expected: int, timeout: float = 120.0, idle: float = 10.0) -> Delivery:
        """Collect what arrived once each client has `expected` events (or nothing moves)."""
        for conn in self.conns:
            conn.send({"kind": "finish", "expected": expected, "timeout": timeout, "idle": idle})
        answers = self._gather("result", timeout + 60)
        latencies: array[float] = array("d")
        for answer in answers:
            latencies.frombytes(answer["latencies"])
        firsts = [a["first_recv"] for a in answers if a["first_recv"]]
        return Delivery(
            latencies=latencies,
            received=sum(a["received"] for a in answers),
            clients=sum(a["clients"] for a in answers),
            complete=sum(a["complete"] for a in answers),
            first_recv=min(firsts) if firsts else 0.0,
            last_recv=max(a["last_recv"] for a in answers),
            bad_events=sum(a["bad_events"] for a in answers),
            disconnects=sum(a["disconnects"] for a in answers),
            disconnect_reasons=dict(
                sum((Counter(a["disconnect_reasons"]) for a in answers), Counter())
            ),
            client_cpu_seconds=sum(a["cpu_seconds"] for a in answers) - self.cpu_mark,
        )

    def close(self, timeout: float = 60.0) -> None:
        """Disconnect every client and end the workers."""
        if any(proc.pid is None for proc in self.procs):  # start() never ran
            return
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send({"kind": "close"})
        with contextlib.suppress(TimeoutError, RuntimeError):
            self._gather("closed", timeout)
        for proc in self.procs:
            if proc.pid is None:  # never started
                continue
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
