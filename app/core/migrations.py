"""Run Alembic programmatically: `chatapi migrate`, `chatapi serve` and the tests use this.

The migrations are package data (app/migrations), found through importlib.resources, so an
installed wheel migrates from any working directory; the checkout's alembic.ini points the
`alembic` command at the same folder for developers.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_PACKAGE = "app.migrations"


def script_location() -> Path:
    """The folder holding env.py and versions/ (inside the installed package)."""
    location = files(MIGRATIONS_PACKAGE)
    # Alembic reads migrations as files; a package imported from a zip has no folder.
    if not isinstance(location, Path) or not (location / "env.py").is_file():
        raise RuntimeError(
            f"chatapi's migrations are not a folder on disk ({location}): install chatapi "
            "as an ordinary (unzipped) package, e.g. `pip install chatapi`"
        )
    return location


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the packaged migrations against `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # What the checkout's alembic.ini says too: one path per entry, split the OS's way.
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision` (blocking; call from a thread inside a loop)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(database_url), revision)
