"""Rendering tenant templates where a runaway render can be killed.

The sandbox (app/templating/sandbox.py) refuses what amplifies; what it cannot bound (long
C-level work, memory held through many small values) is stopped by the process the render
runs in: a worker of a LimitedPool (app/isolation/pool.py) with
TEMPLATE_RENDER_TIMEOUT_SECONDS of wall-clock time (and one second more of CPU) and
TEMPLATE_RENDER_MEMORY_MB of address space, TEMPLATE_RENDER_WORKERS of them per process.
A render past a limit fails its event with the limit's name; the process is replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.core.config import Settings
from app.isolation.pool import (
    JobOutOfMemory,
    JobRaised,
    JobTimedOut,
    LimitedPool,
    PoolLimits,
)
from app.templating.templates import TemplateFailed

RENDER = "app.templating.templates:render"


class TemplateRenderer:
    """Renders inbound templates in the process's pool of limited render workers."""

    def __init__(self, settings: Settings) -> None:
        self.timeout_seconds = settings.TEMPLATE_RENDER_TIMEOUT_SECONDS
        self.memory_mb = settings.TEMPLATE_RENDER_MEMORY_MB
        self._pool = LimitedPool(
            workers=settings.TEMPLATE_RENDER_WORKERS,
            limits=PoolLimits(
                timeout_seconds=self.timeout_seconds, memory_bytes=self.memory_mb << 20
            ),
            # The worker processes start with the template code loaded.
            preload=("app.templating.templates",),
            name="chatapi-template-render",
        )

    async def render(self, template: Any, body: Any, headers: Mapping[str, str]) -> Any:
        """`templates.render` in a render worker; TemplateFailed with the reason when the
        template fails or passes a limit. (Other errors — the pool shut down, a worker that
        died on its own — are not the template's fault and propagate.)"""
        try:
            return await self._pool.call(RENDER, template, body, dict(headers))
        except JobTimedOut:
            raise TemplateFailed(f"template render exceeded {self.timeout_seconds:g} s") from None
        except JobOutOfMemory:
            raise TemplateFailed(
                f"template render exceeded its memory limit ({self.memory_mb} MB)"
            ) from None
        except JobRaised as exc:
            if exc.type_name == TemplateFailed.__name__:
                raise TemplateFailed(exc.message) from None
            raise TemplateFailed(f"template: {exc.type_name}: {exc.message}") from None

    async def aclose(self) -> None:
        """End the render workers."""
        await self._pool.aclose()
