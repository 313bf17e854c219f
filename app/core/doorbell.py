"""The doorbell: how services say "look at these rows now" without knowing the broker.

The rows are the truth (DESIGN.md §1.1): a ring only shortens the wait for work that the
beat sweep would find anyway, so a ring is never raised to its caller and never waited for
by a request. Each process's runtime holds one (`Runtime.doorbell`, built by
`build_runtime`); the one that publishes through Celery lives in app/worker/doorbell.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# (client_id, event_id) of a stored inbound event.
InboundPair = tuple[str, str]
# Inbound events per `inbound.process_events` message (the worker processes one message's
# events in turn); the inbound sweep batches by it too.
INBOUND_BATCH = 50


class Doorbell(Protocol):
    """Rings for committed rows; coalesced, off the caller's path, failures only logged."""

    async def ring_deliveries(
        self, client_id: str, delivery_ids: Sequence[str], *, batch: int | None = None
    ) -> None:
        """Ask a worker to attempt these due deliveries (returns before the publish);
        `batch`: the ids one task message carries (a channel's `batch_size`; default 100)."""
        ...

    async def ring_inbound(self, pairs: Sequence[InboundPair]) -> None:
        """Ask a worker to process these stored inbound events (returns before the publish)."""
        ...

    async def drain(self) -> None:
        """Wait until everything rung so far was published (or failed): before a stop."""
        ...
