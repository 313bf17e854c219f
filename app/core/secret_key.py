"""The process's SecretBox: from SECRET_KEY, or outside production from a generated key file.

Production refuses to start without a strong SECRET_KEY (app.core.config). Elsewhere an unset
SECRET_KEY must not make the relay unusable, nor give each process its own key (the API seals
a webhook secret that the worker must open), so a random key is generated once and kept in a
file readable only by its owner — beside the SQLite database by default, since that is the
state it protects — and every process on the machine started with the same settings reads it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.crypto import SecretBox

log = logging.getLogger("chatapi.secrets")

KEY_FILE_NAME = "chatapi.secret"


def key_file_path(settings: Settings) -> Path:
    """Where the generated key lives: SECRET_KEY_FILE, else beside the SQLite file, else cwd."""
    if settings.SECRET_KEY_FILE:
        return Path(settings.SECRET_KEY_FILE)
    if settings.is_sqlite:
        database = make_url(settings.DATABASE_URL).database
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).resolve().parent / KEY_FILE_NAME
    return Path.cwd() / KEY_FILE_NAME


def _read_or_create(path: Path) -> str:
    try:
        # O_EXCL: of several processes starting at once exactly one creates the file; the
        # others fall through to reading it. Mode 0600 from the start, never world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        key = secrets.token_urlsafe(48)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        log.warning(
            "SECRET_KEY is not set: generated one into %s; set SECRET_KEY in production", path
        )
        return key
    # A concurrent creator may not have written yet: an empty read is retried briefly.
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            log.warning("SECRET_KEY is not set: using the generated key in %s", path)
            return key
        time.sleep(0.02)
    raise RuntimeError(f"the key file {path} is empty; delete it or set SECRET_KEY")


def load_secret_box(settings: Settings) -> SecretBox:
    """The SecretBox for `settings` (SECRET_KEY, or the generated key file outside production)."""
    if settings.SECRET_KEY:
        return SecretBox(settings.SECRET_KEY)
    if settings.ENVIRONMENT == "production":
        # Settings already refuse this; a hand-built Settings must not slip through.
        raise ValueError("SECRET_KEY is required when ENVIRONMENT=production")
    return SecretBox(_read_or_create(key_file_path(settings)))
