"""A ChatAPI channel that appends every delivery to a JSON-lines file.

It shows the driver interface (docs/channels.md): a typed content model (the send's `file`
object, validated with a 422 when it does not fit and shown in the OpenAPI document), the
default recipient expansion (one delivery per user), and a quota per tenant.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
    Quota,
    TenantLimits,
)
from app.channels.driver import BaseChannel


class FileContent(BaseModel):
    """The send's `file` object: a line's event name and its text."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=10_000)


class FileChannel(BaseChannel):
    """Appends one JSON line per delivery; at most `per_minute` lines per tenant a minute."""

    name = "file"
    content_model = FileContent

    def __init__(self, path: Path, per_minute: int = 600) -> None:
        self.path = path
        self.per_minute = per_minute

    async def send(
        self, target: DeliveryTarget, content: dict[str, Any], ctx: ChannelContext
    ) -> Outcome:
        started = time.monotonic()
        line = json.dumps(
            {
                "delivery_id": target.delivery_id,
                "notification_id": ctx.notification_id,
                "client_id": target.client_id,
                "user_id": target.user_id,
                "content": content,
            }
        )
        try:
            # File I/O blocks; keep it off the worker's event loop.
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            return Outcome(OutcomeKind.RETRY, error=str(exc))
        return Outcome(OutcomeKind.DELIVERED, duration_ms=(time.monotonic() - started) * 1000)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def quota(self, target: DeliveryTarget, limits: TenantLimits) -> Quota | None:
        """Each tenant's own budget of lines per minute; over it a delivery waits (it is
        deferred to the window's reset, never failed)."""
        return Quota(self.per_minute, "minute", (target.client_id,), "q-file")


def create(ctx: ChannelFactoryContext) -> FileChannel:
    """The entry point: where to write and the quota come from the environment."""
    return FileChannel(
        Path(os.environ.get("CHATAPI_FILE_CHANNEL_PATH", "notifications.jsonl")),
        per_minute=int(os.environ.get("CHATAPI_FILE_CHANNEL_PER_MINUTE", "600")),
    )
