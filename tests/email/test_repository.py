"""A client's SMTP configuration on both databases: its `smtp` providers (`smtp`, and
`smtp-fallback` when it has one) and the `email` route naming them, replaced by each PUT."""

from __future__ import annotations

from typing import Any

from app.core.clock import ManualClock
from app.core.db import Database
from app.email import repository as email_configs
from app.providers import repository as providers


def _config(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "smtp.example.com",
        "port": 587,
        "username": "mailer",
        "password_sealed": "sealed-pw",
        "security": "starttls",
        "from_email": "no-reply@example.com",
        "from_name": "Example",
        "fallback": None,
    }
    values.update(overrides)
    return values


async def test_email_config_upsert_creates_then_replaces_and_stays_with_its_client(
    db: Database, client_id: str, other_client_id: str, clock: ManualClock
) -> None:
    async with db.session() as session:
        created = await email_configs.upsert(session, client_id, now=clock.now(), **_config())
        await session.commit()
    assert (created.host, created.port, created.password_sealed) == (
        "smtp.example.com",
        587,
        "sealed-pw",
    )
    clock.advance(5)
    fallback = {
        "host": "backup.example.com",
        "port": 465,
        "username": None,
        "security": "tls",
        "from_email": "no-reply@example.com",
        "from_name": None,
        "password_sealed": "sealed-fb",
    }
    async with db.session() as session:
        replaced = await email_configs.upsert(
            session, client_id, now=clock.now(), **_config(port=2525, fallback=fallback)
        )
        await session.commit()
    assert (replaced.port, replaced.fallback, replaced.updated_at) == (
        2525,
        fallback,
        clock.now(),
    )
    async with db.session() as session:
        got = await email_configs.get(session, client_id)
        assert got is not None and got.port == 2525
        route = await providers.get_route(session, client_id, "email")
        assert route is not None and route.providers == ["smtp", "smtp-fallback"]
        rows = await providers.by_names(session, client_id, ["smtp", "smtp-fallback"])
        assert sorted((p.name, p.secrets_sealed["password"]) for p in rows) == [
            ("smtp", "sealed-pw"),
            ("smtp-fallback", "sealed-fb"),
        ]
        assert await email_configs.get(session, other_client_id) is None
        assert not await email_configs.delete_config(session, other_client_id)
        assert await email_configs.delete_config(session, client_id)
        await session.commit()
    async with db.read_session() as session:
        assert await email_configs.get(session, client_id) is None
        # The route named only these two: it goes with them (the default applies again).
        assert await providers.get_route(session, client_id, "email") is None


async def test_a_put_without_fallback_takes_it_out_of_the_route(
    db: Database, client_id: str, clock: ManualClock
) -> None:
    fallback = {**_config(), "password_sealed": "sealed-fb"}
    async with db.session() as session:
        await email_configs.upsert(
            session, client_id, now=clock.now(), **_config(fallback=fallback)
        )
        await email_configs.upsert(session, client_id, now=clock.now(), **_config())
        await session.commit()
    async with db.read_session() as session:
        route = await providers.get_route(session, client_id, "email")
        assert route is not None and route.providers == ["smtp"]
        assert [p.name for p in await providers.of_channel(session, client_id, "email")] == ["smtp"]
