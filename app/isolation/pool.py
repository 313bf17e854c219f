"""A pool of limited worker processes (app/isolation/worker.py), used from one event loop.

A thread cannot be stopped: `asyncio.wait_for(asyncio.to_thread(...))` stops waiting while
the thread burns on, holding a slot of the executor everything else shares. A job here
runs in a worker process that limits itself (address space, CPU time per job, a lower
priority; see the worker) and gets a wall-clock deadline, counted from the moment a worker
takes it. Past the deadline the worker is SIGKILLed — it may be inside one long C call,
which no polite signal interrupts — and a fresh one takes its place; so does a worker that
ran out of memory or died.

Workers are fresh interpreters (`python -m app.isolation.worker`, fork + exec: safe from
a process with threads and a running event loop, which a bare fork is not, and unlike
multiprocessing's spawn and forkserver they do not import the parent's `__main__` — the
whole service — again). They start on the first job and stay warm; at most `workers` jobs
run at once and the others wait for a worker, which does not count against a deadline.
Jobs and results cross a socket pair as length-prefixed JSON, so the parent unpickles
nothing a worker sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.isolation.worker import FRAME, READY

log = logging.getLogger("chatapi.isolation")

# Bigger answers mean a broken worker (callers bound their results far below this).
MAX_FRAME_BYTES = 64 << 20
# A worker's start (a fresh interpreter and its preloads) on a busy machine.
STARTUP_TIMEOUT_SECONDS = 60.0
# Between attempts to start a worker after a failed start (e.g. out of processes).
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# The folder holding the `app` package.
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


class JobFailed(Exception):
    """A job did not produce a result; the message says why."""


class JobTimedOut(JobFailed):
    """The job passed its deadline or CPU allowance; its process was killed."""


class JobOutOfMemory(JobFailed):
    """The job passed the memory limit; its process exits and is replaced."""


class JobCrashed(JobFailed):
    """The worker process died without answering (not by one of the pool's limits)."""


class JobRaised(JobFailed):
    """The job's function raised: its exception's type name and message."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class PoolClosed(RuntimeError):
    """The pool was shut down before the job finished."""


@dataclass(frozen=True)
class PoolLimits:
    """What one job may use: wall-clock seconds, address space, CPU seconds (default: the
    deadline rounded up, plus one), and the workers' nice increment."""

    timeout_seconds: float
    memory_bytes: int
    cpu_seconds: int | None = None
    nice: int = 10

    @property
    def cpu_allowance(self) -> int:
        """CPU seconds per job (RLIMIT_CPU counts whole seconds)."""
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        return math.ceil(self.timeout_seconds) + 1


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


class LimitedPool:
    """A small pool of limited worker processes, used from the event loop of its first call."""

    def __init__(
        self,
        *,
        workers: int,
        limits: PoolLimits,
        preload: Sequence[str] = (),
        name: str = "chatapi-limited",
    ) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.limits = limits
        self._size = workers
        self._preload = list(preload)
        self._name = name
        # Starting and reaping processes blocks: one thread of the pool's own, never the
        # loop's default executor.
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-starter")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._workers: set[_Worker] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def worker_pids(self) -> list[int]:
        """The pids of the live worker processes."""
        return [w.pid for w in self._workers]

    async def call(self, target: str, *args: Any) -> Any:
        """Run `target(*args)` (a `"module:function"`, JSON arguments and result) in a worker.

        Raises JobTimedOut, JobOutOfMemory, JobCrashed or JobRaised when it gives no
        result, and PoolClosed once the pool is shut down.
        """
        job = orjson.dumps({"call": target, "args": args})
        idle = self._open()
        worker = await idle.get()
        if worker is None:
            idle.put_nowait(None)  # the shutdown mark, for the next waiter too
            raise PoolClosed("the pool was shut down")
        keep = False
        try:
            reply = await asyncio.wait_for(self._exchange(worker, job), self.limits.timeout_seconds)
            keep = "oom" not in reply
        except asyncio.TimeoutError:
            raise JobTimedOut(f"exceeded {self.limits.timeout_seconds:g} s") from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            if self._closed:
                raise PoolClosed("the pool was shut down") from None
            raise await self._death(worker) from None
        finally:
            if keep and not self._closed:
                idle.put_nowait(worker)
            else:
                self._replace(worker)
        if "ok" in reply:
            return reply["ok"]
        if "oom" in reply:
            raise JobOutOfMemory(f"exceeded {self.limits.memory_bytes >> 20} MB")
        raise JobRaised(str(reply.get("type", "Exception")), str(reply.get("error", "")))

    async def aclose(self) -> None:
        """Kill every worker, fail waiting and running calls with PoolClosed, stop."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._background):
            task.cancel()
        if self._idle is not None:
            self._idle.put_nowait(None)
        workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.kill()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(self._starter, _reap, worker.process)
        self._starter.shutdown(wait=False)

    def _open(self) -> asyncio.Queue[_Worker | None]:
        if self._closed:
            raise PoolClosed("the pool was shut down")
        loop = asyncio.get_running_loop()
        if self._idle is None:
            self._loop, self._idle = loop, asyncio.Queue()
            for _ in range(self._size):
                self._in_background(self._new_worker())
        elif loop is not self._loop:
            raise RuntimeError("a LimitedPool is used from the event loop of its first call")
        return self._idle

    async def _exchange(self, worker: _Worker, job: bytes) -> dict[str, Any]:
        worker.writer.write(FRAME.pack(len(job)) + job)
        await worker.writer.drain()
        reply = orjson.loads(await _read_frame(worker.reader))
        if not isinstance(reply, dict):
            raise ValueError("an answer that is not an object")
        return reply

    async def _death(self, worker: _Worker) -> JobFailed:
        """Why a worker that stopped answering (or answered garbage) died, once reaped."""
        worker.kill()  # a dead one keeps its exit status; a babbling one is ended
        await asyncio.get_running_loop().run_in_executor(self._starter, _reap, worker.process)
        code = worker.process.returncode
        if code == -signal.SIGXCPU:
            return JobTimedOut(f"used more than {self.limits.cpu_allowance} s of CPU")
        if code is not None and code < 0:
            return JobCrashed(f"its process was killed by {signal.Signals(-code).name}")
        return JobCrashed(f"its process exited with code {code}")

    def _replace(self, worker: _Worker) -> None:
        # SIGKILL, not a request to stop: the job may be inside one long C call.
        worker.kill()
        self._workers.discard(worker)
        if not self._closed:
            log.warning(
                "limited worker ended; starting another",
                extra={"pool": self._name, "pid": worker.pid},
            )
            self._in_background(self._new_worker(reap=worker))

    def _in_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _new_worker(self, reap: _Worker | None = None) -> None:
        """Start a worker and make it idle once ready; retried, slower and slower, until
        one starts or the pool closes (calls wait for a worker meanwhile)."""
        loop = asyncio.get_running_loop()
        if reap is not None:
            await loop.run_in_executor(self._starter, _reap, reap.process)
        failures = 0
        while not self._closed:
            try:
                worker = await self._started_worker()
            except Exception:
                delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
                failures += 1
                log.exception("could not start a limited worker", extra={"pool": self._name})
                await asyncio.sleep(delay)
                continue
            if self._closed or self._idle is None:
                worker.kill()
                return
            self._workers.add(worker)
            self._idle.put_nowait(worker)
            return

    async def _started_worker(self) -> _Worker:
        loop = asyncio.get_running_loop()
        process, sock = await loop.run_in_executor(self._starter, _spawn)
        reader, writer = await asyncio.open_connection(sock=sock)
        worker = _Worker(process, reader, writer)
        try:
            setup = orjson.dumps(
                {
                    "sys_path": sys.path,
                    "preload": self._preload,
                    "memory_bytes": self.limits.memory_bytes,
                    "cpu_seconds": self.limits.cpu_allowance,
                    "nice": self.limits.nice,
                }
            )
            writer.write(FRAME.pack(len(setup)) + setup)
            # Ready only once it says so: a job's deadline must not pay for a start.
            ready = await asyncio.wait_for(_read_frame(reader), STARTUP_TIMEOUT_SECONDS)
            if ready != READY:
                raise ValueError("a worker that did not start as expected")
        except BaseException:
            worker.kill()
            with contextlib.suppress(RuntimeError):  # the starter is shut down on close
                self._starter.submit(_reap, process)
            raise
        return worker


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"an answer of {size} bytes")
    return await reader.readexactly(size)


def _spawn() -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair()
    # The worker module is found where this one was, installed or not.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (_SOURCE_ROOT, env.get("PYTHONPATH"))))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.isolation.worker", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


def _reap(process: subprocess.Popen[bytes]) -> None:
    # Killed (or exiting), so this is quick; no zombie is left.
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
