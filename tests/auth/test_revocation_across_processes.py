"""Revocation reaches every API process within a second (two real servers, one Redis)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from tests.conftest import child_env, make_settings
from tests.support.api import bearer
from tests.support.processes import running_server

pytestmark = pytest.mark.slow


def _poll_until_status(
    http: httpx.Client, url: str, key: str, status: int, timeout: float
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if http.get(url, headers=bearer(key)).status_code == status:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{url} never answered {status} within {timeout}s")


def test_a_key_revoked_in_one_process_is_refused_by_the_other_within_1s(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}revoke:"
    )
    env = child_env(settings)
    with (
        running_server(env, tmp_path, "api-a") as a,
        running_server(env, tmp_path, "api-b") as b,
        httpx.Client(timeout=5) as http,
    ):
        created = http.post(
            f"{a}/api/v1/clients", json={"name": "x"}, headers=bearer(settings.ADMIN_API_KEY or "")
        )
        master = created.json()["master_key"]
        user = http.post(
            f"{a}/api/v1/users", json={"external_id": "u"}, headers=bearer(master)
        ).json()

        def login() -> str:
            r = http.post(
                f"{a}/api/v1/auth/login", json={"user_id": user["id"]}, headers=bearer(master)
            )
            return str(r.json()["api_key"])

        # Login rotation: B has the first key verified and cached, A issues a second.
        first = login()
        for _ in range(3):
            assert http.get(f"{b}/api/v1/auth/me", headers=bearer(first)).status_code == 200
        second = login()
        assert _poll_until_status(http, f"{b}/api/v1/auth/me", first, 401, 1.0) < 1.0

        # Explicit revocation through A of a key B has cached.
        for _ in range(3):
            assert http.get(f"{b}/api/v1/auth/me", headers=bearer(second)).status_code == 200
        key_id = second.split("_")[1]
        assert http.delete(f"{a}/api/v1/keys/{key_id}", headers=bearer(master)).status_code == 204
        assert _poll_until_status(http, f"{b}/api/v1/auth/me", second, 401, 1.0) < 1.0

        # A device's relogin through A reaches B; B keeps the other device's key.
        def device_login(device: str) -> str:
            r = http.post(
                f"{a}/api/v1/auth/login",
                json={"user_id": user["id"], "device_id": device},
                headers=bearer(master),
            )
            return str(r.json()["api_key"])

        phone, laptop = device_login("phone"), device_login("laptop")
        for key in (phone, laptop):
            assert http.get(f"{b}/api/v1/auth/me", headers=bearer(key)).status_code == 200
        device_login("phone")
        assert _poll_until_status(http, f"{b}/api/v1/auth/me", phone, 401, 1.0) < 1.0
        assert http.get(f"{b}/api/v1/auth/me", headers=bearer(laptop)).status_code == 200

        # A connect token minted through A opens one socket, on B; A then refuses it.
        token = http.post(f"{a}/api/v1/auth/connect-token", headers=bearer(laptop)).json()["token"]
        with ws_connect(f"{b.replace('http', 'ws')}/api/v1/websocket/open?token={token}") as ws:
            assert json.loads(ws.recv(timeout=5))["event"] == "connected"
            with ws_connect(
                f"{a.replace('http', 'ws')}/api/v1/websocket/open?token={token}"
            ) as again:
                with pytest.raises(ConnectionClosed):
                    again.recv(timeout=5)
                assert again.close_code == 4401
