"""The one place the service reads the time, always timezone-aware UTC."""

from datetime import datetime, timezone


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(timezone.utc)
