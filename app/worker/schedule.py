"""The beat schedule: every periodic task and how often it runs."""

from __future__ import annotations

from typing import Any

from app.core.config import Settings

# How often due inbound events and expired leases are re-rung (a lost doorbell's delay).
INBOUND_SWEEP_INTERVAL_SECONDS = 5.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic tasks keyed by a stable name."""
    return {
        "system-heartbeat": {
            "task": "system.heartbeat",
            "schedule": settings.HEARTBEAT_INTERVAL_SECONDS,
        },
        "inbound-sweep-events": {
            "task": "inbound.sweep_events",
            "schedule": INBOUND_SWEEP_INTERVAL_SECONDS,
        },
        "rooms-sweep-inactive": {
            "task": "rooms.sweep_inactive",
            "schedule": settings.ROOM_SWEEP_INTERVAL_SECONDS,
        },
        # The doorbell for retries, scheduled sends and lost messages (DESIGN.md §1.1).
        "notifications-sweep-due": {
            "task": "notifications.sweep_due",
            "schedule": settings.DELIVERY_SWEEP_INTERVAL_SECONDS,
            # A sweep older than the next one is redundant: drop it rather than pile up.
            "options": {"expires": settings.DELIVERY_SWEEP_INTERVAL_SECONDS},
        },
        # Hourly delivery rollups behind GET /analytics/summary (app/analytics/rollup.py).
        "analytics-roll-up": {
            "task": "analytics.roll_up",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        "notifications-purge": {"task": "notifications.purge", "schedule": 86_400},
        # The in-app inbox's retention (INBOX_RETENTION_DAYS).
        "notifications-purge-inbox": {"task": "notifications.purge_inbox", "schedule": 3600},
    }
