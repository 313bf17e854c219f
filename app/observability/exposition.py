"""`GET /metrics`: the runtime's registry (app/observability/metrics.py defines the series)
and the delivery queue's depth and oldest due age, read from the database when scraped (the
database is the queue's truth, DESIGN.md §1.1), not kept in a process.

Apart from the series' definitions because it reads the queue: the definitions sit below
every package that counts something, this endpoint above the notifications it looks at.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.responses import Response

from app.notifications.queue import queue_stats

router = APIRouter(tags=["health"])


class _QueueCollector(Collector):
    def __init__(self, depth: int, oldest_age: float) -> None:
        self._depth = depth
        self._age = oldest_age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "chatapi_delivery_queue_depth",
            "Deliveries due now and not yet taken by a worker.",
            value=self._depth,
        )
        yield GaugeMetricFamily(
            "chatapi_delivery_oldest_due_age_seconds",
            "How long the oldest due delivery has waited (0 when none is due).",
            value=self._age,
        )


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format: HTTP, connections, events, deliveries, queue, inbound."""
    state: Any = request.app.state
    # The runtime's registry: every process's series in multiprocess mode (app/compose.py).
    body = generate_latest(state.runtime.metrics)
    try:
        stats = await queue_stats(state.db)
    except Exception:  # a scrape without the queue beats no scrape while the DB is down
        stats = None
    if stats is not None:
        queue = CollectorRegistry(auto_describe=False)
        queue.register(_QueueCollector(stats.depth, stats.oldest_due_age_seconds))
        body += generate_latest(queue)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
