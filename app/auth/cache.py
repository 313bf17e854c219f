"""Verified keys kept in memory so steady-state authentication costs no bcrypt."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from app.auth.principal import Principal
from app.core.clock import monotonic


@dataclass(slots=True)
class CachedKey:
    """A key whose secret was verified, and when its row was last re-read."""

    principal: Principal
    checked_at: float


class VerifiedKeyCache:
    """A bounded LRU of verified keys by fingerprint, droppable by key id."""

    def __init__(self, max_size: int = 10_000) -> None:
        self._max = max_size
        self._entries: OrderedDict[str, CachedKey] = OrderedDict()
        self._by_key_id: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def get(self, fp: str) -> CachedKey | None:
        """The cached entry for a presented key's fingerprint."""
        with self._lock:
            entry = self._entries.get(fp)
            if entry is not None:
                self._entries.move_to_end(fp)
            return entry

    def put(self, fp: str, principal: Principal, *, checked_at: float | None = None) -> None:
        """Remember a verified key (its row read at `checked_at`, default now)."""
        with self._lock:
            when = monotonic() if checked_at is None else checked_at
            self._entries[fp] = CachedKey(principal, when)
            self._entries.move_to_end(fp)
            self._by_key_id.setdefault(principal.key_id, set()).add(fp)
            while len(self._entries) > self._max:
                old_fp, old = self._entries.popitem(last=False)
                self._forget_index(old.principal.key_id, old_fp)

    def drop_key_ids(self, key_ids: list[str]) -> None:
        """Forget every entry of these keys (revoked or changed)."""
        with self._lock:
            for key_id in key_ids:
                for fp in self._by_key_id.pop(key_id, set()):
                    self._entries.pop(fp, None)

    def drop(self, fp: str) -> None:
        """Forget one entry."""
        with self._lock:
            entry = self._entries.pop(fp, None)
            if entry is not None:
                self._forget_index(entry.principal.key_id, fp)

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_index(self, key_id: str, fp: str) -> None:
        fps = self._by_key_id.get(key_id)
        if fps is not None:
            fps.discard(fp)
            if not fps:
                del self._by_key_id[key_id]
