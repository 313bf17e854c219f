"""Channel discovery through the `chatapi.channels` entry-point group, plugins included."""

from __future__ import annotations

import json
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
