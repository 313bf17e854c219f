"""Every error the API returns is RFC 9457 problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.core.middleware import BodyLimitMiddleware
from app.main import create_app
from tests.conftest import app_client, make_settings
from tests.support.processes import free_port

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


class Echo(BaseModel):
    name: str
    count: int


def _app_with_probe_routes(db_url: str, **overrides: object) -> FastAPI:
    app = create_app(make_settings(db_url, **overrides), run_embedded_worker=False)

    @app.post("/_probe/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/_probe/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    return app


@pytest.fixture
async def probe_client(sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = _app_with_probe_routes(sqlite_url, MAX_REQUEST_BODY_BYTES=1024)
    async for client in app_client(app):
        yield client


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    return dict(body)


async def test_unknown_path_is_a_404_problem(probe_client: httpx.AsyncClient) -> None:
    body = _assert_problem(await probe_client.get("/api/v1/nothing-here"), 404)
    assert body["instance"] == "/api/v1/nothing-here"


async def test_wrong_method_is_a_405_problem(probe_client: httpx.AsyncClient) -> None:
    body = _assert_problem(await probe_client.delete("/health/live"), 405)
    assert "DELETE" in str(body["detail"])


async def test_invalid_body_is_a_422_problem_listing_errors(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post("/_probe/echo", json={"name": "x", "count": "many"})
    body = _assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["loc"] == ["body", "count"]
    assert {"loc", "msg", "type"} == set(errors[0])


async def test_malformed_json_is_a_422_problem(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/_probe/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 422)


async def test_oversize_body_by_content_length_is_a_413_problem(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post("/_probe/echo", json={"name": "x" * 2000, "count": 1})
    body = _assert_problem(response, 413)
    assert "1024 bytes" in str(body["detail"])


async def test_oversize_streamed_body_is_a_413_problem(probe_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 200
        yield b'", "count": 1}'

    response = await probe_client.post(
        "/_probe/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413)


async def test_body_under_the_limit_is_accepted(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/echo", json={"name": "x" * 500, "count": 1})
    assert response.status_code == 200
    assert response.json() == {"name": "x" * 500, "count": 1}


async def test_unhandled_error_is_a_500_problem_without_internals(sqlite_url: str) -> None:
    app = _app_with_probe_routes(sqlite_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/_probe/boom")
    body = _assert_problem(response, 500)
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert body["instance"] == "/_probe/boom"


async def test_request_id_is_echoed_or_generated(probe_client: httpx.AsyncClient) -> None:
    given = await probe_client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await probe_client.get("/health/live")
    assert len(generated.headers["x-request-id"]) == 26
    hostile = await probe_client.get("/health/live", headers={"X-Request-ID": "a b\x7f"})
    assert hostile.headers["x-request-id"] != "a b\x7f"


async def test_wrong_method_lists_every_method_of_the_path_in_allow(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.put("/api/v1/rooms/some-room")
    _assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed
    assert "PUT" not in allowed


async def test_keyless_request_with_malformed_json_is_told_to_authenticate(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.post(
        "/api/v1/rooms", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = _assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in str(body["detail"])
    # Unauthenticated routes still parse and validate as before.
    _assert_problem(
        await probe_client.post(
            "/_probe/echo", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )


async def test_body_slower_than_the_timeout_is_a_408_problem(sqlite_url: str) -> None:
    app = _app_with_probe_routes(sqlite_url)
    never = asyncio.Event()

    async def stalls_after_first_chunk() -> AsyncIterator[bytes]:
        yield b'{"name": "x", '
        await never.wait()  # the rest of the declared body never comes
        yield b'"count": 1}'

    async with app.router.lifespan_context(app):
        # The app's own limiter waits 30 s; the same middleware with a short budget in front.
        guarded = BodyLimitMiddleware(app, max_bytes=1024, timeout=0.2)
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.post(
                "/_probe/echo",
                content=stalls_after_first_chunk(),
                headers={"content-type": "application/json", "content-length": "40"},
            )
    body = _assert_problem(response, 408)
    assert "did not arrive" in str(body["detail"])
    assert response.headers["connection"] == "close"


async def test_trailing_slash_is_a_404_problem_naming_the_exact_path(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.get("/api/v1/rooms/")
    body = _assert_problem(response, 404)
    assert "/api/v1/rooms?" in str(body["detail"])
    assert "location" not in response.headers


async def test_repeated_query_parameter_is_a_422_problem(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.get("/api/v1/utils/health-check?limit=5&limit=500")
    body = _assert_problem(response, 422)
    assert body["errors"] == [
        {"loc": ["query", "limit"], "msg": "given more than once", "type": "duplicate"}
    ]
    assert (await probe_client.get("/api/v1/utils/health-check?limit=5")).status_code == 200


async def test_an_unreachable_database_is_a_503_problem_with_retry_after() -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    async for client in app_client(create_app(make_settings(url), run_embedded_worker=False)):
        response = await client.get(
            "/api/v1/clients/me", headers={"Authorization": "Bearer ck_0123456789abcdef_secret"}
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"
        assert response.json()["type"].endswith("/database-unavailable")


def test_asyncpgs_own_outage_errors_count_as_the_database_unavailable() -> None:
    # Statements on a kept asyncpg connection (hot_driver) raise the driver's errors, not
    # SQLAlchemy's: an outage among them is a 503, a wrong statement stays a 500.
    from asyncpg import exceptions as pg

    from app.core.errors import database_unavailable

    assert database_unavailable(pg.ConnectionDoesNotExistError("closed mid-operation"))
    assert database_unavailable(pg.AdminShutdownError("terminating connection"))
    assert database_unavailable(pg.CannotConnectNowError("the database system is starting up"))
    assert database_unavailable(pg.InterfaceError("cannot perform operation: connection is closed"))
    assert not database_unavailable(pg.UniqueViolationError("duplicate key"))
    assert not database_unavailable(pg.InterfaceError("another operation is in progress"))
    assert not database_unavailable(ValueError("a bug"))


def test_an_adapted_driver_error_raised_while_connecting_is_read_by_its_cause() -> None:
    # A pool connect for a raw driver connection (hot_driver) right after a PostgreSQL
    # restart raised SQLAlchemy's adapted `Error`, not a DBAPIError, caused by asyncpg's
    # CannotConnectNowError: that was a 500 in the PostgreSQL fault test, and is a 503.
    import asyncpg
    from asyncpg import exceptions as pg
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    from app.core.errors import database_unavailable

    dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)

    def adapted(cause: Exception) -> Exception:
        try:
            try:
                raise cause
            except Exception as exc:
                raise dbapi.Error(str(exc)) from exc
        except Exception as outer:
            return outer

    starting = adapted(pg.CannotConnectNowError("the database system is starting up"))
    assert not isinstance(starting, pg.PostgresError)  # only its cause says what happened
    assert database_unavailable(starting)
    assert not database_unavailable(adapted(pg.UniqueViolationError("duplicate key")))
