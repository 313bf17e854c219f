"""DirectRoute: a well-formed request reaches the direct handler; any other gets exactly
what FastAPI's own handler answers for the same declared route."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Request, Response
from pydantic import BaseModel, Field

from app.api.direct_route import direct_route
from app.core.errors import install_error_handlers


class Body(BaseModel):
    name: str = Field(min_length=1)
    count: int = 0


def make_app(direct: bool, calls: list[str]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def endpoint(
        body: Body,
        key: Annotated[
            str | None, Header(alias="idempotency-key", min_length=1, max_length=5)
        ] = None,
    ) -> Response:
        calls.append("fastapi")
        return Response(f"{body.name}:{body.count}:{key}", status_code=202)

    async def handler(request: Request, body: Any, headers: dict[str, str | None]) -> Response:
        calls.append("direct")
        return Response(f"{body.name}:{body.count}:{headers['idempotency-key']}", status_code=202)

    override = direct_route(handler, Body, {"idempotency-key": (1, 5)}) if direct else None
    app.router.add_api_route(
        "/send", endpoint, methods=["POST"], status_code=202, route_class_override=override
    )
    return app


async def answer(app: FastAPI, content: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        r = await http.post("/send", content=content, headers=headers)
    body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
    return r.status_code, body


async def test_well_formed_requests_take_the_direct_handler() -> None:
    calls: list[str] = []
    app = make_app(True, calls)
    status, text = await answer(
        app,
        b'{"name": "a", "count": 2}',
        {"content-type": "application/json", "idempotency-key": "k1"},
    )
    assert (status, text, calls) == (202, "a:2:k1", ["direct"])


async def test_other_requests_get_fastapis_answer_unchanged() -> None:
    json_type = {"content-type": "application/json"}
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b'{"name": "a"', json_type),  # invalid JSON
        (b"", json_type),  # no body
        (b'{"name": ""}', json_type),  # fails the model
        (b'{"name": "a", "count": "x"}', json_type),
        (b"[1, 2]", json_type),
        (b'{"name": "a"}', {**json_type, "idempotency-key": "too-long"}),
        (b'{"name": "a"}', {**json_type, "idempotency-key": ""}),
        (b'{"name": "a"}', {"content-type": "text/plain"}),
        (b'{"name": "a"}', {}),
    ]
    for content, headers in cases:
        plain_calls: list[str] = []
        direct_calls: list[str] = []
        expected = await answer(make_app(False, plain_calls), content, headers)
        got = await answer(make_app(True, direct_calls), content, headers)
        assert got == expected, (content, headers)
        assert direct_calls == plain_calls and "direct" not in direct_calls
