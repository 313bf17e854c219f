"""A real `chatapi serve` (PostgreSQL + Redis, with a Celery worker) for the client's tests,
started with the main project's own helpers (tests/conftest.py, tests/support/processes.py)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.processes import (  # noqa: E402
    ChildProcess,
    chatapi_process,
    free_port,
    wait_until,
)

# tests/support's serve_process gives a server 30 s; on a loaded 2-core CI box (other suites
# running beside this one) migrating and starting can take longer.
START_TIMEOUT = 120.0

from tests.conftest import (  # noqa: E402
    ADMIN_KEY,
    RUN_ID,
    child_env,
    create_pg_database,
    drop_pg_database,
    make_settings,
)


@dataclass
class Server:
    """A running server: its URL and the admin key."""

    base: str
    admin_key: str

    def tenant(self) -> str:
        """A new client (tenant) of this server; its master key."""
        r = httpx.post(
            f"{self.base}/api/v1/clients",
            json={"name": f"pyclient {secrets.token_hex(3)}"},
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["master_key"])


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run with scripts/test.sh clients/python/tests")
    return value


@contextmanager
def serving(env: dict[str, str], workdir: Path, name: str) -> Iterator[str]:
    """`chatapi serve` on a free port until the block ends; its base URL once ready."""
    port = free_port()
    child = ChildProcess(["serve", "--port", str(port)], env, workdir, workdir / f"{name}.log")
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if child.proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{child.output()}")
        try:
            return httpx.get(f"{base}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, START_TIMEOUT, f"{name} to be ready", interval=0.2)
        yield base
    finally:
        child.stop()


@contextmanager
def chatapi_server(workdir: Path, name: str, worker: bool, **overrides: Any) -> Iterator[Server]:
    """`chatapi serve` (and a worker) on a database of its own and a Redis prefix of its own."""
    pg, redis = _env("TEST_DATABASE_URL"), _env("TEST_REDIS_URL")
    database = f"chatapi_pyclient_{RUN_ID}_{name}"
    url = asyncio.run(create_pg_database(pg, database))
    settings = make_settings(
        url,
        REDIS_URL=redis,
        REDIS_KEY_PREFIX=f"chatapi-pyclient-{RUN_ID}-{name}:",
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        **overrides,
    )
    env = child_env(settings)
    try:
        with serving(env, workdir, f"{name}-serve") as base:
            if worker:
                with chatapi_process(
                    ["worker", "--concurrency", "2"], env, workdir, f"{name}-worker"
                ):
                    yield Server(base, ADMIN_KEY)
            else:
                yield Server(base, ADMIN_KEY)
    finally:
        asyncio.run(drop_pg_database(pg, database))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server most tests share (each makes its own tenant)."""
    with chatapi_server(tmp_path_factory.mktemp("pyclient"), "main", worker=True) as running:
        yield running


@pytest.fixture
def master_key(server: Server) -> str:
    """The master key of a tenant of this test alone."""
    return server.tenant()
