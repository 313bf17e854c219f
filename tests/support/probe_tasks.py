"""Test-only Celery tasks and their table: a retried probe and a presence echo.

The API process of a test registers these by importing this module; a `chatapi worker`
child registers them through `EXTRA_TASK_MODULES=tests.support.probe_tasks` (with the
repository root on PYTHONPATH). The probe table lives in its own metadata, created by the
test on its database, so the production schema (and Alembic) never sees it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from app.core.clock import utcnow
from app.core.db import Database
from app.core.ids import new_id
from app.core.types import UTCDateTime
from app.realtime.events import user_target
from app.worker.celery_app import celery_app
from app.worker.runtime import RuntimeTask

MODULE = __name__
PROBE_MAX_RETRIES = 10
PRESENCE_EVENT = "probe.presence"

REPO_ROOT = Path(__file__).resolve().parents[2]


def with_probe_tasks(env: dict[str, str]) -> dict[str, str]:
    """`env` for a `chatapi` child that registers these tasks too."""
    path = env.get("PYTHONPATH", "")
    return env | {
        "EXTRA_TASK_MODULES": MODULE,
        "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT),
    }


metadata = sa.MetaData()
probes = sa.Table(
    "test_task_probes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("fail_times", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


async def ensure_probe_table(db: Database) -> None:
    """Create the probe table on `db` if it is missing."""
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def create_probe(db: Database, fail_times: int) -> str:
    """A probe that fails `fail_times` attempts before it succeeds; its id."""
    probe_id = new_id()
    async with db.session() as session:
        await session.execute(
            probes.insert().values(
                id=probe_id, attempts=0, fail_times=fail_times, updated_at=utcnow()
            )
        )
        await session.commit()
    return probe_id


async def attempt_probe(db: Database, probe_id: str) -> bool:
    """Count one attempt; True when it succeeds."""
    async with db.session() as session:
        row = (
            await session.execute(
                probes.update()
                .where(probes.c.id == probe_id)
                .values(attempts=probes.c.attempts + 1, updated_at=utcnow())
                .returning(probes.c.attempts, probes.c.fail_times)
            )
        ).one()
        succeeded = bool(row.attempts > row.fail_times)
        await session.execute(
            probes.update()
            .where(probes.c.id == probe_id)
            .values(status="done" if succeeded else "retrying")
        )
        await session.commit()
        return succeeded


async def read_probe(db: Database, probe_id: str) -> dict[str, Any] | None:
    """The probe's row as a dict."""
    async with db.read_session() as session:
        row = (await session.execute(sa.select(probes).where(probes.c.id == probe_id))).first()
    return dict(row._mapping) if row is not None else None


@celery_app.task(name="tests.probe", bind=True, max_retries=PROBE_MAX_RETRIES)
def probe(self: RuntimeTask, probe_id: str, countdown: float = 1.0) -> None:
    """Fail until the probe's `fail_times` is used up, retrying after `countdown` seconds."""
    runtime = self.runtime
    if not runtime.run(attempt_probe(runtime.db, probe_id)):
        raise self.retry(countdown=countdown)


@celery_app.task(name="tests.presence_echo", bind=True)
def presence_echo(self: RuntimeTask, client_id: str, user_id: str, tell_user_id: str) -> None:
    """Ask presence whether `user_id` is online; publish the answer to `tell_user_id`."""
    runtime = self.runtime

    async def echo() -> None:
        online = await runtime.presence.is_online(client_id, user_id)
        await runtime.bus.publish(
            client_id,
            user_target(tell_user_id),
            PRESENCE_EVENT,
            {"user_id": user_id, "online": online},
        )

    runtime.run(echo())
