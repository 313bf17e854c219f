"""GET /metrics: Prometheus text that prometheus-client's parser reads, whose counters
move with traffic, in one process and merged across `chatapi serve --workers 2`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from tests.conftest import child_env, make_settings
from tests.support.api import Api, bearer
from tests.support.processes import chatapi_process, free_port, wait_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def requests_to(parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float], route: str) -> float:
    return sum(
        v
        for (name, labels), v in parsed.items()
        if name == "chatapi_http_requests_total" and ("route", route) in labels
    )


async def test_metrics_parse_and_move_with_traffic(api: Api) -> None:
    tenant = await api.tenant()
    before = samples((await api.http.get("/metrics")).text)
    for _ in range(3):
        await api.http.get("/api/v1/rooms", headers=tenant.auth)
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    assert requests_to(after, "/api/v1/rooms") - requests_to(before, "/api/v1/rooms") == 3
    names = {name for name, _ in after}
    for expected in (
        "chatapi_http_request_duration_seconds_bucket",
        "chatapi_delivery_queue_depth",
        "chatapi_delivery_oldest_due_age_seconds",
    ):
        assert expected in names, expected


async def test_ready_shows_the_queue_and_degrades_over_the_age_threshold(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from app.core.clock import utcnow
    from app.core.ids import new_id
    from app.core.migrations import upgrade
    from app.main import create_app
    from app.notifications.models import Delivery, Notification
    from tests.conftest import app_client

    # Its own database: the queue is every client's, and other tests leave deliveries due.
    url = f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}"
    await asyncio.to_thread(upgrade, url)
    app = create_app(make_settings(url, QUEUE_DEGRADED_AGE_SECONDS=60), run_embedded_worker=False)
    async for client in app_client(app):
        api = Api(client, app=app)
        tenant = await api.tenant()
        healthy = (await client.get("/health/ready")).json()
        assert healthy["status"] == "ok"
        assert healthy["queue"]["oldest_due_age_seconds"] <= 60
        async with app.state.db.session() as session:
            note = Notification(id=new_id(), client_id=tenant.id)
            session.add(note)
            await session.flush()
            session.add(
                Delivery(
                    id=new_id(),
                    client_id=tenant.id,
                    notification_id=note.id,
                    channel="nochannel",
                    status="retrying",
                    next_attempt_at=utcnow() - timedelta(hours=1),
                )
            )
            await session.commit()
        lagging = await client.get("/health/ready")
        assert lagging.status_code == 200
        body = lagging.json()
        assert body["status"] == "degraded"
        assert body["queue"]["depth"] >= 1
        assert body["queue"]["oldest_due_age_seconds"] >= 3600


def _traffic(base: str, settings: Settings) -> list[str]:
    """Wait for the server, send 20 counted requests, return four scrapes."""

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, "serve --workers 2")
    # Separate connections, so both worker processes take requests.
    admin = bearer(settings.ADMIN_API_KEY or "")
    master = httpx.post(f"{base}/api/v1/clients", json={"name": "m"}, headers=admin).json()
    for _ in range(20):
        httpx.get(f"{base}/api/v1/rooms", headers=bearer(master["master_key"]))
    # A request is counted once its answer is sent: wait for the last one's count.
    wait_until(
        lambda: requests_to(samples(httpx.get(f"{base}/metrics").text), "/api/v1/rooms") == 20,
        10,
        "the 20 requests to be counted",
    )
    return [httpx.get(f"{base}/metrics").text for _ in range(4)]


@pytest.mark.slow
async def test_metrics_merge_the_processes_of_serve_workers_2(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}metrics:"
    )
    env = child_env(settings)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # `chatapi serve` makes its own
    port = free_port()
    args = ["serve", "--workers", "2", "--port", str(port)]
    with chatapi_process(args, env, tmp_path, "w2"):
        texts = await asyncio.to_thread(_traffic, f"http://127.0.0.1:{port}", settings)
    for text in texts:
        # Whichever process answered, it counts every process's requests.
        assert requests_to(samples(text), "/api/v1/rooms") == 20
