"""Fake push services on 127.0.0.1, each implementing the real protocol and checking what
our code sends with independent libraries.

- `FakePushService` (HTTPS, a test certificate): a Web Push service (RFC 8030). It checks
  the VAPID `Authorization: vapid t=…, k=…` header (RFC 8292: PyJWT verifies the ES256
  token with the `k` public key, `aud` must be its own origin, `exp` in the future, `sub`
  present) and decrypts the aes128gcm body (RFC 8291) with `http_ece` and the browser-side
  private key and auth secret the test made, recording the plaintexts. An endpoint can be
  made to answer 410 Gone (or any status).
- `FakeFcm` (HTTP): Google's OAuth 2.0 token endpoint (the JWT bearer grant: PyJWT verifies
  the RS256 assertion with the service account's public key) and FCM HTTP v1's
  `messages:send` (bearer checked, messages recorded, 404 UNREGISTERED for tokens told so).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import http_ece
import jwt
import orjson
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.processes import free_port
from tests.support.push_keys import BrowserKeys

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


def write_tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "push-cert.pem", folder / "push-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class PushReceived:
    """One push the fake accepted (or refused), decrypted."""

    subscription: str
    plaintext: bytes | None
    headers: dict[str, str]
    claims: dict[str, Any]
    status: int


@dataclass
class FakePushService:
    """A Web Push service: `subscribe()` gives a browser's subscription JSON."""

    port: int = field(default_factory=free_port)
    browsers: dict[str, BrowserKeys] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    received: list[PushReceived] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests were refused (400/401)

    @property
    def origin(self) -> str:
        """The service's origin: what a VAPID token's `aud` must be."""
        return f"https://127.0.0.1:{self.port}"

    def subscribe(self, keys: BrowserKeys | None = None) -> tuple[str, dict[str, Any]]:
        """A new subscription: (its id here, the browser's PushSubscription JSON)."""
        keys = keys or BrowserKeys()
        sub_id = secrets.token_urlsafe(12)
        self.browsers[sub_id] = keys
        return sub_id, keys.subscription(f"{self.origin}/push/{sub_id}")

    def answer(self, sub_id: str, status: int) -> None:
        """Answer pushes to `sub_id` with `status` (410: the subscription is gone)."""
        self.answers[sub_id] = status

    def plaintexts(self, sub_id: str) -> list[bytes]:
        """What was decrypted for `sub_id`, in order."""
        return [r.plaintext for r in self.received if r.subscription == sub_id and r.plaintext]

    def _refuse(self, status: int, why: str) -> Response:
        self.refused.append(why)
        return JSONResponse({"error": why}, status_code=status)

    async def handle(self, request: Request) -> Response:
        sub_id = request.path_params["sub_id"]
        headers = dict(request.headers)
        body = await request.body()
        claims, why = self._vapid(headers.get("authorization", ""))
        if claims is None:
            return self._refuse(401, f"VAPID: {why}")
        if headers.get("content-encoding") != "aes128gcm":
            return self._refuse(400, f"content-encoding {headers.get('content-encoding')!r}")
        if not headers.get("ttl", "").isdigit():
            return self._refuse(400, "TTL header missing")
        keys = self.browsers.get(sub_id)
        status = self.answers.get(sub_id, 201 if keys else 404)
        plaintext = None
        if keys is not None and status < 300:
            try:
                plaintext = http_ece.decrypt(
                    body,
                    private_key=keys.private_key,
                    auth_secret=keys.auth_secret,
                    version="aes128gcm",
                )
            except Exception as exc:
                return self._refuse(400, f"cannot decrypt: {type(exc).__name__}: {exc}")
        self.received.append(PushReceived(sub_id, plaintext, headers, claims, status))
        location = {"location": f"{self.origin}/message/{secrets.token_urlsafe(8)}"}
        return Response(status_code=status, headers=location if status < 300 else {})

    def _vapid(self, authorization: str) -> tuple[dict[str, Any] | None, str]:
        scheme, _, params = authorization.partition(" ")
        if scheme.lower() != "vapid":
            return None, f"scheme {scheme!r}"
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if "t" not in parts or "k" not in parts:
            return None, "t= and k= needed"
        try:
            raw = jwt.utils.base64url_decode(parts["k"])
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
            claims = jwt.decode(
                parts["t"],
                key=public,
                algorithms=["ES256"],
                audience=self.origin,
                options={"require": ["exp", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return dict(claims), ""


@dataclass
class FakeFcm:
    """FCM HTTP v1 and the OAuth 2.0 token endpoint of one service account."""

    project_id: str = "chatapi-test"
    port: int = field(default_factory=free_port)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    client_email: str = "relay@chatapi-test.iam.gserviceaccount.com"
    tokens: set[str] = field(default_factory=set)
    unregistered: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    exchanges: int = 0
    refused: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        """The API host (`base_url` setting)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        """The token endpoint (`token_url` setting): the assertion's `aud`."""
        return f"{self.base_url}/token"

    def service_account_json(self) -> str:
        """The service account's key file, as Google's console downloads it."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return orjson.dumps(
            {
                "type": "service_account",
                "project_id": self.project_id,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": self.client_email,
                "token_uri": self.token_url,
            }
        ).decode()

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401)."""
        self.tokens.clear()

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return self._refuse(400, "unsupported_grant_type")
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                key=self.key.public_key(),
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            return self._refuse(400, f"invalid_grant: {exc}")
        if claims.get("scope") != FCM_SCOPE:
            return self._refuse(400, f"invalid_scope: {claims.get('scope')!r}")
        self.exchanges += 1
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def send(self, request: Request) -> Response:
        if request.path_params["project"] != self.project_id:
            return _fcm_error(404, "NOT_FOUND", None)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.tokens:
            self.refused.append("bearer")
            return _fcm_error(401, "UNAUTHENTICATED", None)
        message = orjson.loads(await request.body()).get("message", {})
        token = message.get("token")
        if not isinstance(token, str) or not token:
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", token_field=True)
        if token in self.unregistered:
            return _fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        self.messages.append(message)
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        return JSONResponse({"name": name})

    def _refuse(self, status: int, why: str) -> Response:
        self.refused.append(why)
        return JSONResponse({"error": why.split(":")[0], "error_description": why}, status)


def _fcm_error(
    status: int, rpc_status: str, error_code: str | None, *, token_field: bool = False
) -> Response:
    details: list[dict[str, Any]] = []
    if error_code:
        details.append(
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        )
    if token_field:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [
                    {"field": "message.token", "description": "Invalid registration token"}
                ],
            }
        )
    body = {
        "error": {"code": status, "message": rpc_status, "status": rpc_status, "details": details}
    }
    return JSONResponse(body, status_code=status)


@contextlib.asynccontextmanager
async def _serve(app: Starlette, port: int, **tls: str) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **tls
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def running_push_service(tls: tuple[Path, Path]) -> AsyncIterator[FakePushService]:
    """A FakePushService served over HTTPS with the certificate and key in `tls`."""
    fake = FakePushService()
    app = Starlette(routes=[Route("/push/{sub_id}", fake.handle, methods=["POST"])])
    async with _serve(app, fake.port, ssl_certfile=str(tls[0]), ssl_keyfile=str(tls[1])):
        yield fake


@contextlib.asynccontextmanager
async def running_fcm() -> AsyncIterator[FakeFcm]:
    """A FakeFcm served over HTTP."""
    fake = FakeFcm()
    app = Starlette(
        routes=[
            Route("/token", fake.token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", fake.send, methods=["POST"]),
        ]
    )
    async with _serve(app, fake.port):
        yield fake
