"""Plain-data inputs for channel tests."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.channels.base import ChannelContext
from app.core.clock import utcnow
from app.core.ids import new_id

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chatapi-channel-example"
EXAMPLE_DIST = "chatapi-channel-example"


def context(**fields: object) -> ChannelContext:
    """A ChannelContext for one attempt of a fresh notification."""
    values: dict[str, object] = {"notification_id": new_id(), "created_at": utcnow()}
    values.update(fields)
    return ChannelContext(**values)  # type: ignore[arg-type]


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def example_plugin_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The example channel package pip-installed into this venv for the session."""
    # Built from a copy so the build leaves nothing in the source tree; no build isolation:
    # the venv's setuptools and wheel build it, so no package index is needed.
    source = tmp_path_factory.mktemp("plugin") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    _pip("install", "--no-build-isolation", "--no-deps", str(source))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        _pip("uninstall", "-y", EXAMPLE_DIST)
        sys.modules.pop("chatapi_channel_example", None)
        importlib.invalidate_caches()
