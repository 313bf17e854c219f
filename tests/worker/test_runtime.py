"""The composition root: every process builds its parts through `build_runtime`, and tasks
reach them through one accessor — the API's own parts in embedded mode, a started Redis
bus and presence in a `chatapi worker` process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from celery import Celery

from app.compose import build_runtime
from app.main import create_app
from app.runtime import RuntimeCallTimeout
from app.system.tasks import heartbeat
from app.worker.celery_app import configure_celery
from app.worker.runtime import RuntimeNotBuilt, runtime_of
from tests.conftest import ADMIN_KEY, child_env, make_settings
from tests.support.probe_tasks import PRESENCE_EVENT, presence_echo, with_probe_tasks
from tests.support.processes import chatapi_process, running_server
from tests.support.realtime import Scene, WsClient, make_scene, wait_for
from tests.support.server import serving


def test_accessor_fails_loudly_when_the_process_built_no_runtime() -> None:
    with pytest.raises(RuntimeNotBuilt, match="build_runtime"):
        runtime_of(Celery("bare"))


def test_a_worker_runtime_without_redis_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="REDIS_URL"):
        build_runtime(make_settings(sqlite_url), role="worker")


def test_a_task_without_a_runtime_fails_instead_of_building_one_from_the_environment() -> None:
    # No app lifespan or worker is running: the process has built nothing.
    with pytest.raises(RuntimeNotBuilt):
        heartbeat()


async def test_a_hung_call_out_of_a_task_is_cut_by_the_default_timeout(sqlite_url: str) -> None:
    runtime = build_runtime(make_settings(sqlite_url, TASK_TIMEOUT_SECONDS=0.2), role="api")
    await runtime.start()
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        # A task thread calls run(); the coroutine runs on the runtime's loop (this one).
        with pytest.raises(RuntimeCallTimeout, match=r"0\.2"):
            await asyncio.to_thread(runtime.run, hang())
        await asyncio.wait_for(cancelled.wait(), 10)
    finally:
        await runtime.stop()


async def _client_id(http: httpx.AsyncClient, scene: Scene) -> str:
    me = await http.get(f"{scene.base}/api/v1/auth/me", headers=scene.master_auth)
    return str(me.json()["client_id"])


async def _presence_seen_by_task(
    http: httpx.AsyncClient, base: str, enqueue_in_thread: bool
) -> None:
    """Connect user 0, have a task ask presence about users 0 and 1 and publish the answers
    to user 0's socket; both answers must arrive with the right value."""
    scene = await make_scene(http, base, ADMIN_KEY)
    client_id = await _client_id(http, scene)
    online, offline = scene.users[0]["id"], scene.users[1]["id"]
    ws = await WsClient.open(base, scene.keys[0])
    try:
        for asked in (online, offline):
            args = (client_id, asked, online)
            if enqueue_in_thread:
                await asyncio.to_thread(presence_echo.delay, *args)
            else:
                presence_echo.delay(*args)
        answers = {}
        for asked in (online, offline):
            _, data = await wait_for(
                ws.events,
                lambda e, a=asked: e[0] == PRESENCE_EVENT and e[1]["user_id"] == a,
                timeout=30,
            )
            answers[asked] = data["online"]
        assert answers == {online: True, offline: False}
    finally:
        await ws.close()


async def test_embedded_task_uses_the_api_bus_and_presence(sqlite_url: str) -> None:
    settings = make_settings(
        sqlite_url, HEARTBEAT_INTERVAL_SECONDS=3600, ROOM_SWEEP_INTERVAL_SECONDS=3600
    )
    app = create_app(settings)
    async with serving(app) as base, httpx.AsyncClient(timeout=10) as http:
        await _presence_seen_by_task(http, base, enqueue_in_thread=False)


@pytest.mark.slow
async def test_worker_process_publishes_on_redis_and_reads_redis_presence(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url,
        REDIS_URL=redis_server_url,
        REDIS_KEY_PREFIX=f"{redis_prefix}runtime:",
        HEARTBEAT_INTERVAL_SECONDS=3600,
        ROOM_SWEEP_INTERVAL_SECONDS=3600,
    )
    env = with_probe_tasks(child_env(settings))
    with (
        running_server(env, tmp_path) as base,
        chatapi_process(["worker", "--concurrency", "2"], env, tmp_path, "worker"),
    ):
        configure_celery(settings)
        async with httpx.AsyncClient(timeout=10) as http:
            await _presence_seen_by_task(http, base, enqueue_in_thread=True)
