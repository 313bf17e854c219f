"""A leased table: which model holds the work and which of its statuses mean what.

The engine (app/leasing/repository.py) needs these columns on the model: `id`,
`client_id`, `status`, `attempts`, `next_attempt_at`, `lease_until`, `updated_at`. A row is
due when its status is one of `due_statuses` and `next_attempt_at` has passed (NULL: not
due, e.g. a parked delivery); a claim moves it to `leased_status` under a lease and counts
the attempt; `attempts` is the fence of every finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import SQLModel


@dataclass(frozen=True, slots=True)
class LeasedQueue:
    """A table used as a work queue, and what its statuses mean."""

    model: type[SQLModel]
    due_statuses: tuple[str, ...]
    leased_status: str

    @property
    def id(self) -> InstrumentedAttribute[Any]:
        """The primary key column."""
        return self._column("id")

    @property
    def client_id(self) -> InstrumentedAttribute[Any]:
        """The tenant column (every non-sweep statement filters on it)."""
        return self._column("client_id")

    @property
    def status(self) -> InstrumentedAttribute[Any]:
        """The status column."""
        return self._column("status")

    @property
    def attempts(self) -> InstrumentedAttribute[Any]:
        """The attempt counter: the fence."""
        return self._column("attempts")

    @property
    def next_attempt_at(self) -> InstrumentedAttribute[Any]:
        """When the row is due (NULL: never, until something sets it)."""
        return self._column("next_attempt_at")

    @property
    def lease_until(self) -> InstrumentedAttribute[Any]:
        """Until when the claiming worker holds the row."""
        return self._column("lease_until")

    @property
    def updated_at(self) -> InstrumentedAttribute[Any]:
        """Touched by every claim and finish."""
        return self._column("updated_at")

    def _column(self, name: str) -> InstrumentedAttribute[Any]:
        column: InstrumentedAttribute[Any] = getattr(self.model, name)
        return column
