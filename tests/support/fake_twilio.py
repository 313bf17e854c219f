"""A fake Twilio on 127.0.0.1: the parts of the REST API the `twilio` provider type uses,
and status callbacks signed the way Twilio signs them.

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: HTTP basic auth (`AccountSid:
  AuthToken`; wrong → 401 with Twilio's error 20003, another account's path → 403 20006),
  a form with `To`, `Body` and `From` (one of the account's numbers) or
  `MessagingServiceSid`, optional `StatusCallback`; Twilio's own checks and error codes
  (21604 no To, 21211 invalid To, 21614 not a mobile number, 21602 no Body, 21617 Body
  over 1,600 characters, 21606 a From the account does not own, 21603 no sender). A 201
  answers a message resource with a fresh `SM…` sid, as Twilio does.
- `GET /2010-04-01/Accounts/{AccountSid}.json`: the account resource.
- `fail(sid, status, code)`: the account answers every request so until `recover(sid)`.
- `callback(message, status, error_code)`: the status callback Twilio would POST for the
  message — the form it sends, signed with the official `twilio` package's
  `RequestValidator` — and `post_callback` sends it.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from app.core.phone import e164
from tests.support.fake_push import _serve
from tests.support.processes import free_port

API = "/2010-04-01/Accounts"


def new_sid(prefix: str) -> str:
    """A Twilio resource sid: two letters and 32 hexadecimal digits."""
    return prefix + secrets.token_hex(16)


@dataclass
class TwilioAccount:
    """One account of the fake: its credentials, its numbers and its state."""

    sid: str = field(default_factory=lambda: new_sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    numbers: set[str] = field(default_factory=lambda: {"+15005550006"})
    services: set[str] = field(default_factory=lambda: {new_sid("MG")})
    failing: tuple[int, int | None] | None = None  # (HTTP status, Twilio error code)


@dataclass
class SentMessage:
    """A message the fake accepted."""

    sid: str
    account_sid: str
    form: dict[str, str]

    @property
    def to(self) -> str:
        return self.form["To"]


@dataclass
class SignedCallback:
    """A status callback as Twilio would POST it."""

    url: str
    form: dict[str, str]
    headers: dict[str, str]

    @property
    def body(self) -> bytes:
        return urlencode(self.form).encode()


@dataclass
class FakeTwilio:
    """Twilio's Messages API for any number of accounts."""

    port: int = field(default_factory=free_port)
    accounts: dict[str, TwilioAccount] = field(default_factory=dict)
    invalid_numbers: set[str] = field(default_factory=set)  # answered 21211
    landlines: set[str] = field(default_factory=set)  # answered 21614
    messages: list[SentMessage] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (account sid, outcome)

    @property
    def base_url(self) -> str:
        """The API host (`base_url` setting)."""
        return f"http://127.0.0.1:{self.port}"

    def account(self) -> TwilioAccount:
        """A new account."""
        account = TwilioAccount()
        self.accounts[account.sid] = account
        return account

    def fail(self, sid: str, status: int, code: int | None = None) -> None:
        """The account answers `status` (with Twilio error `code`) until `recover`."""
        self.accounts[sid].failing = (status, code)

    def recover(self, sid: str) -> None:
        self.accounts[sid].failing = None

    def sent_to(self, number: str) -> list[SentMessage]:
        return [m for m in self.messages if m.to == number]

    # ---- the REST API

    def _authenticated(self, request: Request, sid: str) -> TwilioAccount | Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        account = self.accounts.get(user)
        if scheme.lower() != "basic" or account is None or password != account.auth_token:
            self.requests.append((sid, "401"))
            return _error(401, 20003, "Authenticate")
        if user != sid:
            self.requests.append((sid, "403"))
            return _error(403, 20006, "Access denied to another account's resource")
        if account.failing is not None:
            status, code = account.failing
            self.requests.append((sid, str(status)))
            return _error(status, code, "Service unavailable (fake failure)")
        return account

    async def account_resource(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        account = self._authenticated(request, sid)
        if isinstance(account, Response):
            return account
        return JSONResponse(
            {"sid": sid, "friendly_name": "fake account", "status": "active", "type": "Full"}
        )

    async def create_message(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        account = self._authenticated(request, sid)
        if isinstance(account, Response):
            return account
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return _error(400, 20001, "the body must be a form")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        refused = self._refusal(account, form)
        if refused is not None:
            self.requests.append((sid, f"400 {refused[0]}"))
            return _error(400, *refused)
        message = SentMessage(new_sid("SM"), sid, form)
        self.messages.append(message)
        self.requests.append((sid, "201"))
        return JSONResponse(
            {
                "sid": message.sid,
                "account_sid": sid,
                "to": form["To"],
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "accepted" if "MessagingServiceSid" in form else "queued",
                "num_segments": str(-(-len(form["Body"]) // 160)),
                "api_version": "2010-04-01",
                "uri": f"{API}/{sid}/Messages/{message.sid}.json",
            },
            status_code=201,
        )

    def _refusal(self, account: TwilioAccount, form: dict[str, str]) -> tuple[int, str] | None:
        to, body = form.get("To", ""), form.get("Body", "")
        if not to:
            return 21604, "A 'To' phone number is required."
        try:
            e164(to)
        except ValueError:
            return 21211, f"The 'To' number {to} is not a valid phone number."
        if to in self.invalid_numbers:
            return 21211, f"The 'To' number {to} is not a valid phone number."
        if to in self.landlines:
            return 21614, f"'To' number {to} is not a valid mobile number"
        if not body:
            return 21602, "Message body is required."
        if len(body) > 1600:
            return 21617, "The concatenated message body exceeds the 1600 character limit."
        if "MessagingServiceSid" in form:
            if form["MessagingServiceSid"] not in account.services:
                return 21703, "The Messaging Service does not exist"
        elif "From" in form:
            if form["From"] not in account.numbers:
                return 21606, "The From phone number is not a valid, SMS-capable number"
        else:
            return 21603, "A 'From' or 'MessagingServiceSid' parameter is required"
        return None

    # ---- status callbacks

    def callback(
        self, message: SentMessage, status: str, error_code: int | None = None
    ) -> SignedCallback:
        """The status callback Twilio would POST for `message` (it must have asked for
        one), signed with its account's auth token by Twilio's own library."""
        url = message.form["StatusCallback"]
        form = {
            "AccountSid": message.account_sid,
            "ApiVersion": "2010-04-01",
            "From": message.form.get("From", "+15005550006"),
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        token = self.accounts[message.account_sid].auth_token
        signature = RequestValidator(token).compute_signature(url, form)
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
            "i-twilio-idempotency-token": secrets.token_hex(16),
        }
        return SignedCallback(url, form, headers)

    async def post_callback(self, callback: SignedCallback) -> httpx.Response:
        """POST the callback where it goes, as Twilio does."""
        async with httpx.AsyncClient() as http:
            return await http.post(callback.url, content=callback.body, headers=callback.headers)


def _error(status: int, code: int | None, message: str) -> Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    if code is not None:
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return JSONResponse(body, status_code=status)


@contextlib.asynccontextmanager
async def running_twilio() -> AsyncIterator[FakeTwilio]:
    """A FakeTwilio served over HTTP on 127.0.0.1."""
    fake = FakeTwilio()
    app = Starlette(
        routes=[
            Route(API + "/{sid}/Messages.json", fake.create_message, methods=["POST"]),
            Route(API + "/{sid}.json", fake.account_resource, methods=["GET"]),
        ]
    )
    async with _serve(app, fake.port):
        yield fake
