"""A fake Mailgun on 127.0.0.1: the Messages API and the events webhooks, as documented.

- `POST /v3/{domain}/messages`: HTTP basic auth `api:<key>` (401 `Forbidden` otherwise), a
  known domain (404), the form as urlencoded or multipart (`from`, repeated `to`,
  `subject`, `text`/`html`, `recipient-variables`, `v:*`, `h:*`, `o:*`), at most 1,000
  recipients; batch sending expanded as Mailgun does it: each recipient's message has
  `%recipient.NAME%` replaced from its entry in `recipient-variables` (in the subject, the
  bodies and the `v:` variables), and a recipient missing from the variables is a 400 like
  Mailgun's. 200 `{"id", "message": "Queued. Thank you."}`; `answer(status)` makes the next
  calls answer something else (500, 401, 429 ...).
- `GET /v3/domains/{domain}`: the domain, for credential checks.
- `post_event(...)`: what Mailgun does after a message, a signed JSON webhook (HMAC-SHA256
  of timestamp + token with the signing key) to our events URL, with the recipient's `v:`
  variables as `user-variables`.
- `GET /_fake/stats`, `POST /_fake/reset`: counts for a bench driving it over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.processes import free_port

MAX_RECIPIENTS = 1000
_VARIABLE = re.compile(r"%recipient\.([A-Za-z0-9_\-]+)%")


@dataclass
class Recipient:
    """One recipient's message of a batch call, expanded."""

    address: str
    subject: str
    text: str | None
    html: str | None
    variables: dict[str, str]  # the `v:` variables after substitution


@dataclass
class Call:
    """One accepted (or refused) Messages API call."""

    domain: str
    status: int
    fields: list[tuple[str, str]]
    recipients: list[Recipient]
    message_id: str | None = None

    def first(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)


@dataclass
class FakeMailgun:
    """The fake's state: its accounts (`domains` → API key) and what it was sent."""

    api_key: str = field(default_factory=lambda: "key-" + secrets.token_hex(16))
    domains: set[str] = field(default_factory=lambda: {"mg.shop.example"})
    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # scripted statuses, first used first
    always: int | None = None
    first_at: float = 0.0
    last_at: float = 0.0
    delivered: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *statuses: int, always: bool = False) -> None:
        """Answer the next calls with `statuses` in turn (always the first: `always`)."""
        if always:
            self.always = statuses[0]
        else:
            self.answers.extend(statuses)

    def recipients(self) -> list[Recipient]:
        """Every recipient of every accepted call, in order."""
        return [r for c in self.calls if c.status == 200 for r in c.recipients]

    def recipient(self, address: str) -> Recipient:
        """The last accepted message to `address`."""
        return [r for r in self.recipients() if r.address == address][-1]

    def reset(self) -> None:
        self.calls.clear()
        self.refused.clear()
        self.answers.clear()
        self.always = None
        self.first_at = self.last_at = 0.0
        self.delivered = 0

    # ---- the API

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == "api" and hmac.compare_digest(key, self.api_key)

    def _refuse(self, status: int, why: str) -> Response:
        self.refused.append(why)
        return JSONResponse({"message": why}, status_code=status)

    async def messages(self, request: Request) -> Response:
        domain = request.path_params["domain"]
        if not self._authorized(request):
            self.refused.append("auth")
            return Response("Forbidden", status_code=401)
        if domain not in self.domains:
            return self._refuse(404, f"Domain not found: {domain}")
        form = await request.form(max_fields=10_000)
        try:
            recipients = expand(form)
        except ValueError as exc:
            return self._refuse(400, str(exc))
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        status = self.answers.pop(0) if self.answers else (self.always or 200)
        call = Call(domain, status, fields, recipients)
        self.calls.append(call)
        if status != 200:
            return JSONResponse({"message": f"scripted {status}"}, status_code=status)
        call.message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{secrets.token_hex(6)}@{domain}>"
        now = time.time()
        self.first_at = self.first_at or now
        self.last_at = now
        self.delivered += len(recipients)
        return JSONResponse({"id": call.message_id, "message": "Queued. Thank you."})

    async def domain(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response("Forbidden", status_code=401)
        name = request.path_params["domain"]
        if name not in self.domains:
            return JSONResponse({"message": "Domain not found"}, status_code=404)
        return JSONResponse({"domain": {"name": name, "state": "active"}})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "calls": len(self.calls),
                "delivered": self.delivered,
                "first": self.first_at,
                "last": self.last_at,
                "refused": len(self.refused),
            }
        )

    async def reset_route(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v3/{domain}/messages", self.messages, methods=["POST"]),
                Route("/v3/domains/{domain}", self.domain, methods=["GET"]),
                Route("/_fake/stats", self.stats, methods=["GET"]),
                Route("/_fake/reset", self.reset_route, methods=["POST"]),
            ]
        )

    # ---- events, as Mailgun POSTs them

    def event_data(
        self, address: str, event: str, *, severity: str | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        """The `event-data` Mailgun reports for the last message to `address`."""
        sent = self.recipient(address)
        data: dict[str, Any] = {
            "event": event,
            "id": secrets.token_urlsafe(16),
            "timestamp": time.time(),
            "recipient": address,
            "user-variables": dict(sent.variables),
            "message": {"headers": {"to": address, "subject": sent.subject}},
        }
        if severity is not None:
            data["severity"] = severity
            data["reason"] = reason or "bounce"
            data["delivery-status"] = {
                "code": 550 if severity == "permanent" else 452,
                "description": "No such mailbox" if severity == "permanent" else "Try later",
            }
        return data


def expand(form: FormData) -> list[Recipient]:
    """Each recipient's message of a batch call, as Mailgun builds it; ValueError (400)
    for a request Mailgun refuses."""
    for required in ("from", "to", "subject"):
        if not form.get(required):
            raise ValueError(f"'{required}' parameter is missing")
    if not form.get("text") and not form.get("html"):
        raise ValueError("Need at least one of 'text', 'html' or 'template' parameters specified")
    to = [str(v) for v in form.getlist("to")]
    if len(to) > MAX_RECIPIENTS:
        raise ValueError(f"Too many recipients: {len(to)} (max {MAX_RECIPIENTS})")
    raw = form.get("recipient-variables")
    variables: dict[str, Any] = {}
    if raw:
        try:
            variables = orjson.loads(str(raw))
        except orjson.JSONDecodeError:
            raise ValueError("recipient-variables parameter is not a valid JSON") from None
        if not isinstance(variables, dict):
            raise ValueError("recipient-variables must be a JSON object")
    if len(set(to)) != len(to) and raw:
        raise ValueError("the same recipient twice in one batch")
    custom = {k[2:]: str(v) for k, v in form.multi_items() if k.startswith("v:")}
    out = []
    for address in to:
        mine = variables.get(address)
        if raw and not isinstance(mine, dict):
            raise ValueError(f"recipient-variables has no entry for {address}")
        values = {str(k): str(v) for k, v in (mine or {}).items()}

        def sub(text: str | None, values: dict[str, str] = values) -> str | None:
            if text is None:
                return None
            return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        out.append(
            Recipient(
                address=address,
                subject=sub(str(form["subject"])) or "",
                text=sub(str(form["text"])) if form.get("text") else None,
                html=sub(str(form["html"])) if form.get("html") else None,
                variables={k: sub(v) or "" for k, v in custom.items()},
            )
        )
    return out


def signature(key: str, timestamp: str | None = None, token: str | None = None) -> dict[str, str]:
    """A webhook `signature` object signed with `key`."""
    timestamp = timestamp or str(int(time.time()))
    token = token or secrets.token_hex(25)
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


async def post_event(
    url: str, event_data: dict[str, Any], sig: dict[str, str] | None
) -> httpx.Response:
    """POST a webhook like Mailgun's (JSON; `sig` None: unsigned)."""
    body: dict[str, Any] = {"event-data": event_data}
    if sig is not None:
        body["signature"] = sig
    async with httpx.AsyncClient() as http:
        return await http.post(
            url,
            content=orjson.dumps(body),
            headers={"content-type": "application/json", "user-agent": "mailgun/treq-16.12.0"},
        )


@contextlib.asynccontextmanager
async def running_mailgun(fake: FakeMailgun | None = None) -> AsyncIterator[FakeMailgun]:
    """A FakeMailgun served over HTTP on 127.0.0.1 in this event loop."""
    fake = fake or FakeMailgun()
    config = uvicorn.Config(
        fake.app(), host="127.0.0.1", port=fake.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
