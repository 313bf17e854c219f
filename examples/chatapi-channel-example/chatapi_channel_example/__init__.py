"""A ChatAPI channel that appends every delivery to a JSON-lines file."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from app.channels.base import (
    ChannelContext,
    ChannelFactoryContext,
    DeliveryTarget,
    Outcome,
    OutcomeKind,
)


class FileChannel:
    """Appends one JSON line per delivery."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

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

    async def aclose(self) -> None:
        return None


def create(ctx: ChannelFactoryContext) -> FileChannel:
    """The entry point: where to write comes from the environment."""
    return FileChannel(Path(os.environ.get("CHATAPI_FILE_CHANNEL_PATH", "notifications.jsonl")))
