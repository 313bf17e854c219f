"""seq is 1..n with no gap or duplicate under concurrent senders on two API processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.conftest import child_env, make_settings
from tests.support.api import bearer
from tests.support.processes import running_server

pytestmark = pytest.mark.slow


async def test_50_concurrent_sends_across_two_processes_get_seq_1_to_50(
    pg_url: str, redis_server_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, REDIS_URL=redis_server_url, REDIS_KEY_PREFIX=f"{redis_prefix}seq:"
    )
    env = child_env(settings)
    with (
        running_server(env, tmp_path, "api-a") as a,
        running_server(env, tmp_path, "api-b") as b,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            admin = bearer(settings.ADMIN_API_KEY or "")
            master = (
                await http.post(f"{a}/api/v1/clients", json={"name": "seq"}, headers=admin)
            ).json()["master_key"]
            users = [
                (
                    await http.post(
                        f"{a}/api/v1/users", json={"external_id": f"u{i}"}, headers=bearer(master)
                    )
                ).json()
                for i in range(5)
            ]
            keys = [
                (
                    await http.post(
                        f"{a}/api/v1/auth/login", json={"user_id": u["id"]}, headers=bearer(master)
                    )
                ).json()["api_key"]
                for u in users
            ]
            room = (
                await http.post(
                    f"{a}/api/v1/rooms",
                    json={"type": "group", "member_ids": [u["id"] for u in users]},
                    headers=bearer(master),
                )
            ).json()

            async def send(i: int) -> httpx.Response:
                base = a if i % 2 else b
                return await http.post(
                    f"{base}/api/v1/rooms/{room['id']}/messages",
                    json={"content": f"m{i}"},
                    headers=bearer(keys[i % len(keys)]),
                )

            responses = await asyncio.gather(*[send(i) for i in range(50)])
            assert [r.status_code for r in responses] == [201] * 50
            assert sorted(r.json()["seq"] for r in responses) == list(range(1, 51))
            stored = (
                await http.get(
                    f"{b}/api/v1/rooms/{room['id']}/messages",
                    params={"after_seq": 0, "limit": 200},
                    headers=bearer(master),
                )
            ).json()["data"]
            assert [m["seq"] for m in stored] == list(range(1, 51))
            assert sorted(m["content"] for m in stored) == sorted(f"m{i}" for i in range(50))
