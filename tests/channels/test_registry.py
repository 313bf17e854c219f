"""Channel discovery through the `chatapi.channels` entry-point group, plugins included."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.channels.base import (
    Channel,
    ChannelFactoryContext,
    DeliveryTarget,
    OutcomeKind,
    load_channels,
)
from app.channels.email import EmailChannel
from app.channels.webhook import WebhookChannel
from app.channels.websocket import WebSocketChannel
from app.core.broadcast import MemoryBroadcast
from app.core.ids import new_id
from app.realtime.bus import EventBus
from app.realtime.presence import MemoryPresence
from tests.channels.conftest import context

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chatapi-channel-example"
EXAMPLE_DIST = "chatapi-channel-example"


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


async def _close(channels: dict[str, Channel]) -> None:
    for channel in channels.values():
        await channel.aclose()


async def test_builtin_channels_are_found_through_entry_points() -> None:
    broadcast = MemoryBroadcast()
    ctx = ChannelFactoryContext(bus=EventBus(broadcast), presence=MemoryPresence())
    channels = load_channels(ctx)
    try:
        assert isinstance(channels["websocket"], WebSocketChannel)
        assert isinstance(channels["email"], EmailChannel)
        assert isinstance(channels["webhook"], WebhookChannel)
    finally:
        await _close(channels)


async def test_websocket_channel_is_left_out_where_there_is_no_bus() -> None:
    channels = load_channels(ChannelFactoryContext())
    try:
        assert "websocket" not in channels
        assert {"email", "webhook"} <= channels.keys()
    finally:
        await _close(channels)


async def test_installed_plugin_channel_is_loaded_and_delivers(
    example_plugin_installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "notifications.jsonl"
    monkeypatch.setenv("CHATAPI_FILE_CHANNEL_PATH", str(out))
    channels = load_channels(ChannelFactoryContext())
    try:
        assert "file" in channels
        target = DeliveryTarget(new_id(), new_id(), user_id="u1")
        ctx = context()
        outcome = await channels["file"].send(target, {"event": "order.shipped"}, ctx)
    finally:
        await _close(channels)

    assert outcome.kind is OutcomeKind.DELIVERED
    [line] = out.read_text().splitlines()
    written = json.loads(line)
    assert written["delivery_id"] == target.delivery_id
    assert written["notification_id"] == ctx.notification_id
    assert written["content"] == {"event": "order.shipped"}
