"""A fake SendGrid on 127.0.0.1 (HTTP): the v3 Mail Send API and the Event Webhook's signing.

- `POST /v3/mail/send`: the bearer key checked (401 otherwise), the JSON validated as
  SendGrid does for the fields it requires (personalizations 1…1,000 with `to`, at most
  1,000 recipients, `from.email`, `subject`, `content` with non-empty values, text/plain
  first, string custom_args), answered 202 with an `X-Message-Id`, or 400 with SendGrid's
  `{"errors": [{"field", "message"}]}`. Every request is recorded; `fail(...)` makes the
  next ones answer a given status (a 500, a 429 with `X-RateLimit-Reset`, …).
- `GET /v3/scopes`: the key's scopes.
- Events: `events_for(call, "delivered")` makes the events SendGrid would post for a
  recorded request (custom args at the top level, `sg_event_id`, `sg_message_id`), and
  `signed(events, timestamp)` signs a batch like SendGrid with an ECDSA P-256 key made for
  the test; `public_key` is its verification key as SendGrid's console shows it.
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_push import _serve
from tests.support.processes import free_port

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UNAUTHORIZED = "The provided authorization grant is invalid, expired, or revoked"


@dataclass
class MailCall:
    """One Mail Send request the fake answered."""

    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    message_id: str | None

    @property
    def recipients(self) -> list[str]:
        """Every `to` address, in order."""
        return [to["email"] for p in self.body.get("personalizations", []) for to in p["to"]]


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    errors: list[dict[str, Any]]


@dataclass
class FakeSendGrid:
    """SendGrid's Mail Send API for one API key, and its Event Webhook signer."""

    port: int = field(default_factory=free_port)
    api_key: str = field(
        default_factory=lambda: f"SG.{secrets.token_urlsafe(16)}.{secrets.token_urlsafe(32)}"
    )
    scopes: list[str] = field(default_factory=lambda: ["mail.send", "user.profile.read"])
    signing_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    calls: list[MailCall] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests were answered 400/401
    _failures: list[_Failure] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The API host (`base_url` setting)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_key(self) -> str:
        """The Event Webhook's verification key: base64 of the DER SubjectPublicKeyInfo."""
        der = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def accepted(self) -> list[MailCall]:
        """The requests answered 202."""
        return [c for c in self.calls if c.status == 202]

    def fail(
        self,
        status: int,
        times: int = 1,
        *,
        headers: dict[str, str] | None = None,
        message: str = "simulated failure",
    ) -> None:
        """Answer the next `times` authorized requests with `status` (SendGrid's error body)."""
        for _ in range(times):
            self._failures.append(
                _Failure(status, headers or {}, [{"field": None, "message": message}])
            )

    # ---- the API

    async def send(self, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            self.refused.append("authorization")
            return _errors(401, [{"field": None, "message": UNAUTHORIZED}])
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if self._failures:
            failure = self._failures.pop(0)
            self.calls.append(MailCall(body or {}, headers, failure.status, None))
            return _errors(failure.status, failure.errors, failure.headers)
        problems = (
            validate(body)
            if headers.get("content-type", "").startswith("application/json")
            else [{"field": None, "message": "Content-Type should be application/json."}]
        )
        if problems:
            self.refused.extend(str(p["message"]) for p in problems)
            self.calls.append(MailCall(body if isinstance(body, dict) else {}, headers, 400, None))
            return _errors(400, problems)
        message_id = secrets.token_urlsafe(16)[:22]
        self.calls.append(MailCall(body, headers, 202, message_id))
        return Response(status_code=202, headers={"x-message-id": message_id})

    async def scopes_of(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _errors(401, [{"field": None, "message": "authorization required"}])
        return JSONResponse({"scopes": self.scopes})

    # ---- the Event Webhook

    def events_for(
        self, call: MailCall, event: str, timestamp: int, **extra: Any
    ) -> list[dict[str, Any]]:
        """The `event` SendGrid would post for each recipient of `call`."""
        out = []
        for personalization in call.body["personalizations"]:
            for to in personalization["to"]:
                out.append(
                    {
                        "email": to["email"],
                        "timestamp": timestamp,
                        "event": event,
                        "sg_event_id": secrets.token_urlsafe(16),
                        "sg_message_id": f"{call.message_id}.filterdrecv-5645d9c87f-x8w2k-1-0",
                        "smtp-id": f"<{call.message_id}@geopod-ismtpd-1>",
                        **personalization.get("custom_args", {}),
                        **extra,
                    }
                )
        return out

    def sign(self, body: bytes, timestamp: str) -> str:
        """SendGrid's signature: base64 of the DER ECDSA P-256/SHA-256 signature of
        timestamp + body."""
        der = self.signing_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(der).decode()

    def signed(self, events: list[dict[str, Any]], timestamp: int) -> tuple[dict[str, str], bytes]:
        """(headers, body) of an Event Webhook POST of `events`, as SendGrid sends it."""
        body = orjson.dumps(events) + b"\r\n"
        stamp = str(timestamp)
        return {SIGNATURE_HEADER: self.sign(body, stamp), TIMESTAMP_HEADER: stamp}, body


def validate(body: Any) -> list[dict[str, Any]]:
    """What SendGrid's v3 Mail Send refuses in a request body (its required fields)."""
    if not isinstance(body, dict):
        return [{"field": None, "message": "Bad Request"}]
    problems: list[dict[str, Any]] = []

    def bad(field_: str, message: str) -> None:
        problems.append({"field": field_, "message": message, "help": None})

    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        bad(
            "personalizations",
            "The personalizations field is required and must have at least one personalization.",
        )
        personalizations = []
    elif len(personalizations) > 1000:
        bad("personalizations", "You may not have more than 1000 personalizations per API request.")
    recipients = 0
    for i, p in enumerate(personalizations):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            bad(
                f"personalizations.{i}.to",
                "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
            )
            continue
        recipients += len(to)
        for j, r in enumerate(to):
            if not isinstance(r, dict) or not _EMAIL.match(str(r.get("email", ""))):
                bad(f"personalizations.{i}.to.{j}.email", "Does not contain a valid address.")
        args = p.get("custom_args", {})
        if not isinstance(args, dict) or not all(isinstance(v, str) for v in args.values()):
            bad(f"personalizations.{i}.custom_args", "Invalid type. Expected: string.")
    if recipients > 1000:
        bad("personalizations", "The total number of recipients must be less than 1001.")
    sender = body.get("from")
    if not isinstance(sender, dict) or not _EMAIL.match(str(sender.get("email", ""))):
        bad("from.email", "The from email does not contain a valid address.")
    subject = body.get("subject")
    if not (isinstance(subject, str) and subject) and not all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    ):
        bad(
            "subject",
            "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
        )
    content = body.get("content")
    if not isinstance(content, list) or not content:
        bad(
            "content",
            "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.",
        )
        content = []
    for i, part in enumerate(content):
        value = part.get("value") if isinstance(part, dict) else None
        if not isinstance(value, str) or not value:
            bad(
                f"content.{i}.value",
                "The content value must be a string at least one character in length.",
            )
    types = [part.get("type") for part in content if isinstance(part, dict)]
    if "text/plain" in types and types[0] != "text/plain":
        bad(
            "content.0.type",
            "If present, text/plain must be first, followed by text/html, followed by any other content.",
        )
    return problems


def _errors(
    status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


@contextlib.asynccontextmanager
async def running_sendgrid() -> AsyncIterator[FakeSendGrid]:
    """A FakeSendGrid served over HTTP on 127.0.0.1."""
    fake = FakeSendGrid()
    app = Starlette(
        routes=[
            Route("/v3/mail/send", fake.send, methods=["POST"]),
            Route("/v3/scopes", fake.scopes_of, methods=["GET"]),
        ]
    )
    async with _serve(app, fake.port):
        yield fake
