"""Realtime: a connection that reconnects and recovers missed messages by `sync`."""

from chatapi_client.realtime.connection import RealtimeConnection, RealtimeError, RealtimeEvent
from chatapi_client.realtime.threaded import SyncRealtimeConnection

__all__ = ["RealtimeConnection", "RealtimeError", "RealtimeEvent", "SyncRealtimeConnection"]
