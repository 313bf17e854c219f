"""bcrypt never runs while a write transaction is open, and wrong secrets cannot run
unbounded bcrypt.

On SQLite a write transaction (`BEGIN IMMEDIATE`) holds the one write lock: a ~0.25 s hash
inside it would stall every other writer of the process for that long.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from app.auth import authenticator as authenticator_module
from app.auth import service as keys_service
from app.auth.secrets import fingerprint
from app.core.db import READ_ONLY
from tests.support.api import Api


class WriteTransactions:
    """Counts the engine's open write (not read-only) transactions."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self._lock = threading.Lock()

    def on_begin(self, conn: Any) -> None:
        if not conn.get_execution_options().get(READ_ONLY, False):
            with self._lock:
                self.open.add(id(conn))

    def on_end(self, conn: Any) -> None:
        with self._lock:
            self.open.discard(id(conn))

    def count(self) -> int:
        with self._lock:
            return len(self.open)


@pytest.fixture
def write_transactions(api: Api) -> Iterator[WriteTransactions]:
    """Track write transactions on the app's engine."""
    assert api.app is not None
    engine = api.app.state.db.engine.sync_engine
    tracker = WriteTransactions()
    listeners = [("begin", tracker.on_begin), ("commit", tracker.on_end)]
    listeners.append(("rollback", tracker.on_end))
    for name, fn in listeners:
        event.listen(engine, name, fn)
    yield tracker
    for name, fn in listeners:
        event.remove(engine, name, fn)


async def test_new_key_secrets_are_hashed_before_the_write_transaction_opens(
    api: Api, write_transactions: WriteTransactions, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_during_hash: list[int] = []
    real = keys_service.hash_secret

    def recording(secret: str, rounds: int = 12) -> str:
        open_during_hash.append(write_transactions.count())
        return real(secret, rounds)

    monkeypatch.setattr(keys_service, "hash_secret", recording)
    tenant = await api.tenant()  # client creation issues the first master key
    user = await api.user(tenant)
    await api.login(tenant, user["id"])
    await api.login(tenant, user["id"])
    r = await api.http.post("/api/v1/clients/me/rotate-key", headers=tenant.auth, json={})
    assert r.status_code == 200
    assert len(open_during_hash) == 4
    assert open_during_hash == [0, 0, 0, 0]


async def test_concurrent_wrong_secrets_run_at_most_ten_bcrypt_verifies(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await api.tenant()
    key_id = tenant.master_key.split("_")[1]
    verifies = 0
    real = authenticator_module.verify_secret

    def counting(secret: str, secret_hash: str) -> bool:
        nonlocal verifies
        verifies += 1
        # Hold the verify a little, as a real cost-12 hash does, so the requests overlap.
        time.sleep(0.05)
        return real(secret, secret_hash)

    monkeypatch.setattr(authenticator_module, "verify_secret", counting)
    statuses = await asyncio.gather(*[api.status_with(f"ck_{key_id}_wrong{i}") for i in range(30)])
    assert verifies <= 10
    assert sorted(statuses) == [401] * verifies + [429] * (30 - verifies)
    assert statuses.count(429) >= 20


async def test_concurrent_first_uses_of_one_key_share_one_verify(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await api.tenant()
    user = await api.user(tenant)
    key = await api.login(tenant, user["id"])
    # As if another process had issued it: this one remembers the keys it issues unhashed.
    assert api.app is not None
    api.app.state.authenticator.cache.drop(fingerprint(key))
    verifies = 0
    real = authenticator_module.verify_secret

    def counting(secret: str, secret_hash: str) -> bool:
        nonlocal verifies
        verifies += 1
        time.sleep(0.05)  # overlap the requests, as a real cost-12 hash does
        return real(secret, secret_hash)

    monkeypatch.setattr(authenticator_module, "verify_secret", counting)
    statuses = await asyncio.gather(*[api.status_with(key, "/api/v1/auth/me") for _ in range(20)])
    # Twenty parallel first requests with a fresh key are one verify and one count against
    # the wrong-secret limit, not twenty (which would be refused as an attack).
    assert statuses == [200] * 20
    assert verifies == 1
