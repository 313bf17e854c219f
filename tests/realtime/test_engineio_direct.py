"""The Engine.IO internals the direct Socket.IO write relies on (app/realtime/engineio_direct.py)
exist on the installed versions, and those versions are in the range pyproject.toml pins.

CI-light: no server. scripts/check_engineio_bounds.sh runs tests/realtime on both ends of the
range (a venv per bound), which is too slow for every CI run.
"""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
import socketio
import tomllib
from engineio import async_socket
from engineio import packet as eio_packet
from packaging.requirements import Requirement

from app.realtime.engineio_direct import DRIVER_ATTR, SOCKET_ATTRIBUTES, record_websockets

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pinned(name: str) -> Requirement:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == name]
    return req


@pytest.mark.parametrize("name", ["python-engineio", "python-socketio"])
def test_the_installed_version_is_in_the_pinned_range(name: str) -> None:
    req = _pinned(name)
    assert req.specifier, f"{name} must be pinned to a tested range"
    assert any(s.operator == "<" for s in req.specifier), f"{name} needs an upper bound"
    assert req.specifier.contains(version(name)), (version(name), str(req.specifier))


def test_the_websocket_driver_is_a_class_built_with_the_sockets_handler() -> None:
    sio = socketio.AsyncServer(async_mode="asgi")
    base = sio.eio._async["websocket"]
    assert inspect.isclass(base)
    assert list(inspect.signature(base.__init__).parameters)[1:] == ["handler", "server"]
    assert inspect.iscoroutinefunction(base.send)
    # Engine.IO builds it from the session's bound `_websocket_handler`.
    assert "self._websocket_handler" in inspect.getsource(async_socket.AsyncSocket)
    assert "ws.send(pkt.encode())" in inspect.getsource(async_socket.AsyncSocket)

    record_websockets(sio)
    other = socketio.AsyncServer(async_mode="asgi")
    assert other.eio._async["websocket"] is base, "the driver module's own dict was changed"
    socket = async_socket.AsyncSocket(sio.eio, "sid")
    driver = sio.eio._async["websocket"](socket._websocket_handler, sio.eio)
    assert getattr(socket, DRIVER_ATTR) is driver


def test_the_socket_attributes_read_exist() -> None:
    sio = socketio.AsyncServer(async_mode="asgi")
    socket = async_socket.AsyncSocket(sio.eio, "sid")
    for name in SOCKET_ATTRIBUTES:
        assert hasattr(socket, name), name
    assert isinstance(socket.queue, asyncio.Queue)
    assert socket.upgraded is False and socket.upgrading is False


def test_a_packet_sends_the_very_string_it_encoded_first() -> None:
    # Our driver recognises our queued event by identity (`message is awaited`).
    pkt = eio_packet.Packet(eio_packet.MESSAGE, data='2["e",{}]')
    first = pkt.encode()
    assert first == '42["e",{}]'
    assert pkt.encode() is first


def test_socketio_sends_the_connect_before_calling_the_managers_connect() -> None:
    # gateway_socketio._HandshakeManager starts a connection's writer from manager.connect;
    # before 5.18 python-socketio called it ahead of the connect handler, so `connected`
    # never went out (every Socket.IO test failed on 5.11, scripts/check_engineio_bounds.sh).
    source = inspect.getsource(socketio.AsyncServer._handle_connect)
    assert "self.manager.pre_connect(" in source
    assert source.index("packet.CONNECT, {'sid': sid}") < source.index("self.manager.connect(")
