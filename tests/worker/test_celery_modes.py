"""Celery in both modes: a task retried with countdown, and a periodic task from beat."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.core.db import Database
from app.main import create_app
from app.system import service
from app.worker.celery_app import configure_celery
from tests.conftest import app_client, child_env, make_settings
from tests.support import probe_tasks
from tests.support.crash_once import with_crash_once
from tests.support.probe_tasks import probe, with_probe_tasks
from tests.support.processes import ChildProcess, chatapi_process, running_server


async def _wait_probe_done(db: Database, probe_id: str, timeout: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await probe_tasks.read_probe(db, probe_id)
        if row is not None and row["status"] == "done":
            return int(row["attempts"])
        assert asyncio.get_running_loop().time() < deadline, f"probe stuck at {row}"
        await asyncio.sleep(0.1)


async def _wait_heartbeats(db: Database, at_least: int, timeout: float) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await service.read_heartbeat(db, "beat")
        if row is not None and row.count >= at_least:
            return row.count
        assert asyncio.get_running_loop().time() < deadline, f"heartbeat stuck at {row}"
        await asyncio.sleep(0.1)


async def test_embedded_worker_retries_a_task_with_countdown(db_url: str) -> None:
    settings = make_settings(db_url, HEARTBEAT_INTERVAL_SECONDS=3600)
    app = create_app(settings)
    async for _ in app_client(app):
        db: Database = app.state.db
        await probe_tasks.ensure_probe_table(db)
        probe_id = await probe_tasks.create_probe(db, fail_times=2)
        started = asyncio.get_running_loop().time()
        probe.delay(probe_id, countdown=0.5)
        assert await _wait_probe_done(db, probe_id, timeout=15) == 3
        # Two retries with a 0.5 s countdown each cannot finish sooner than 1 s.
        assert asyncio.get_running_loop().time() - started >= 1.0


async def test_embedded_beat_fires_the_periodic_task(db_url: str) -> None:
    settings = make_settings(db_url, HEARTBEAT_INTERVAL_SECONDS=0.3)
    app = create_app(settings)
    async for _ in app_client(app):
        db: Database = app.state.db
        before = await service.read_heartbeat(db, "beat")
        start = before.count if before else 0
        assert await _wait_heartbeats(db, start + 3, timeout=15) >= start + 3


async def test_an_embedded_worker_does_not_run_what_was_queued_before_it_started(
    sqlite_url: str,
) -> None:
    # An app without a worker (most tests; `create_app(run_embedded_worker=False)`) still
    # publishes to the process's in-memory broker. A later worker must start empty, as a new
    # process would, not first work through rings meant for another app.
    settings = make_settings(sqlite_url, HEARTBEAT_INTERVAL_SECONDS=3600)
    db = Database(sqlite_url)
    try:
        await probe_tasks.ensure_probe_table(db)
        stale = await probe_tasks.create_probe(db, fail_times=0)
        async for _ in app_client(create_app(settings, run_embedded_worker=False)):
            await asyncio.to_thread(probe.delay, stale)
        async for _ in app_client(create_app(settings)):
            # Sentinels: the queue is FIFO, so the stale probe would have run before the
            # first finished; the second, queued after the first is done, leaves no race.
            for _round in range(2):
                sentinel = await probe_tasks.create_probe(db, fail_times=0)
                await asyncio.to_thread(probe.delay, sentinel)
                assert await _wait_probe_done(db, sentinel, timeout=15) == 1
        row = await probe_tasks.read_probe(db, stale)
        assert row is not None and row["attempts"] == 0 and row["status"] == "pending"
    finally:
        await db.dispose()


@asynccontextmanager
async def _probe_worker(
    pg_url: str,
    redis_server_url: str,
    redis_prefix: str,
    tmp_path: Path,
    extra_env: Callable[[dict[str, str]], dict[str, str]] = lambda env: env,
) -> AsyncIterator[tuple[Database, ChildProcess]]:
    """A `chatapi worker` child on Redis that registers the probe tasks, this process
    publishing to the same broker, and the database the probes live in."""
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}{tmp_path.name}:"
    )
    db = Database(pg_url)
    env = extra_env(with_probe_tasks(child_env(settings)))
    try:
        await probe_tasks.ensure_probe_table(db)
        with chatapi_process(["worker", "--concurrency", "2"], env, tmp_path, "w") as worker:
            configure_celery(settings)
            yield db, worker
    finally:
        await db.dispose()


@pytest.mark.slow
async def test_redis_worker_process_retries_a_task_with_countdown(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with _probe_worker(pg_url, redis_server_url, redis_prefix, tmp_path) as (db, _):
        probe_id = await probe_tasks.create_probe(db, fail_times=2)
        await asyncio.to_thread(probe.delay, probe_id, 0.5)
        assert await _wait_probe_done(db, probe_id, timeout=30) == 3


@pytest.mark.slow
async def test_a_worker_that_stops_on_an_unrecoverable_error_is_replaced(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    marker = tmp_path / "crashed"
    crash_once = functools.partial(with_crash_once, marker=marker)
    async with _probe_worker(pg_url, redis_server_url, redis_prefix, tmp_path, crash_once) as (
        db,
        worker,
    ):
        probe_id = await probe_tasks.create_probe(db, fail_times=0)
        await asyncio.to_thread(probe.delay, probe_id)
        # Two cold starts of `chatapi worker` (the one that crashes and its replacement) plus
        # the restart delay: ~1.5 CPU s each, 10-15 s of wall time each on a loaded 2-core box.
        assert await _wait_probe_done(db, probe_id, timeout=90) == 1
        # The process that crashed is the one that ran the probe: replaced in place.
        assert marker.read_text() == str(worker.proc.pid)
        log = worker.output()
        assert "Unrecoverable error" in log
        assert "starting a new one" in log


@pytest.mark.slow
async def test_scaled_mode_runs_api_worker_and_beat_as_separate_processes(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}scaled:",
        HEARTBEAT_INTERVAL_SECONDS=0.3,
    )
    env = child_env(settings)
    db = Database(pg_url)
    try:
        with (
            running_server(env, tmp_path) as base,
            chatapi_process(["worker", "--concurrency", "2"], env, tmp_path, "worker"),
            chatapi_process(["beat"], env, tmp_path, "beat"),
        ):
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"{base}/health/ready")
            assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
            before = await service.read_heartbeat(db, "beat")
            start = before.count if before else 0
            assert await _wait_heartbeats(db, start + 3, timeout=30) >= start + 3
    finally:
        await db.dispose()
