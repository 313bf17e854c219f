"""A client's SMTP configuration as `/email-config` shows it: a view of its `smtp` providers
named `smtp` (the primary) and `smtp-fallback` (app/providers; no table of its own since
migration 0015)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class EmailConfig:
    """The primary server's fields, and the fallback's as a dict (`host`, `port`,
    `username`, `password_sealed`, `security`, `from_email`, `from_name`), or None.

    `security` is `none`, `starttls` or `tls`. Passwords stay sealed (app.core.crypto).
    """

    client_id: str
    host: str
    port: int
    username: str | None
    password_sealed: str | None
    security: str
    from_email: str
    from_name: str | None
    fallback: dict[str, Any] | None
    updated_at: datetime
