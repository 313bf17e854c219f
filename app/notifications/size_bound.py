"""The bound on one send's total size (NOTIFICATION_MAX_TOTAL_BYTES): its content times its
recipients.

The request body is bounded (MAX_REQUEST_BODY_BYTES) but a send multiplies it: every
delivery carries its channel's content to its recipient (an event on the bus, an e-mail, a
webhook body). 600 KB to 10,000 recipients is 6 GB of work from one request. The bound is
checked on the expanded deliveries (users resolved and deduplicated, webhook subscribers
found, preferences applied), before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from app.core.errors import PayloadTooLarge
from app.notifications.repository import NewDelivery


def total_bytes(content: Mapping[str, dict[str, Any]], deliveries: Sequence[NewDelivery]) -> int:
    """The bytes a send carries: for each delivery that will be sent (a skipped one carries
    nothing), its channel's content as compact JSON."""
    size = {channel: len(orjson.dumps(part)) for channel, part in content.items()}
    return sum(size.get(d.channel, 0) for d in deliveries if d.skip_reason is None)


def check_total(
    content: Mapping[str, dict[str, Any]], deliveries: Sequence[NewDelivery], *, limit: int
) -> None:
    """413 when the send's total exceeds `limit` (NOTIFICATION_MAX_TOTAL_BYTES)."""
    total = total_bytes(content, deliveries)
    if total > limit:
        raise PayloadTooLarge(
            f"This send carries {total} bytes (each channel's content times its recipients); "
            f"NOTIFICATION_MAX_TOTAL_BYTES is {limit}. Split the recipients over several sends "
            "or make the content smaller."
        )
