"""Request dependencies: the database session, the caller, and what the caller may do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import scopes
from app.auth.authenticator import Authenticator
from app.auth.principal import KeyKind, Principal
from app.core.config import Settings
from app.core.crypto import SecretBox
from app.core.errors import Forbidden, Unauthorized
from app.ratelimit.policies import RateLimitPolicies, enforce_request
from app.realtime.bus import EventBus

if TYPE_CHECKING:
    from app.runtime import Runtime

# auto_error=False: a missing key is our own 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <key>`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (and rolled back if uncommitted) afterwards."""
    async with request.app.state.db.session() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for handlers that only read (SQLite: no write lock, readers run in parallel)."""
    async with request.app.state.db.read_session() as session:
        yield session


# The dependencies below are `async def` although they only read app.state: FastAPI runs a
# plain `def` dependency in its thread pool, a thread hop (and GIL hand-off) per request that
# profiled at ~10% of a message send's CPU.


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_secret_box(request: Request) -> SecretBox:
    """The process's SecretBox: seals webhook and hook secrets and SMTP passwords."""
    box: SecretBox = request.app.state.runtime.secret_box
    return box


async def get_bus(request: Request) -> EventBus:
    """The process's event bus."""
    bus: EventBus = request.app.state.bus
    return bus


async def get_authenticator(request: Request) -> Authenticator:
    """The process's authenticator."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


async def get_limits(request: Request) -> RateLimitPolicies:
    """The process's rate limits."""
    limits: RateLimitPolicies = request.app.state.limits
    return limits


async def get_public_base_url(request: Request) -> str:
    """Where the API is reached from outside, without a trailing slash: PUBLIC_BASE_URL, else
    this request's base URL (its scheme and host as the client, or a trusted proxy, gave
    them, and the server's root path)."""
    settings: Settings = request.app.state.settings
    return settings.PUBLIC_BASE_URL or str(request.base_url).rstrip("/")


def runtime_of(request: Request) -> Runtime:
    """The process's parts, for hot routes that take `request` rather than a dependency per
    part: FastAPI resolves each dependency on every request (~10 µs apiece, profiled)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


# The key dependencies below each take the presented key straight from the two security
# schemes (which document `security` in OpenAPI) instead of through a shared `get_principal`
# dependency: every level of the dependency tree is resolved per request, so the principal
# costs three resolutions instead of four.
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
HeaderKeyDep = Annotated[str | None, Depends(_header)]


async def _authenticate(
    request: Request, bearer: HTTPAuthorizationCredentials | None, header_key: str | None
) -> Principal:
    presented = bearer.credentials if bearer is not None else header_key
    if not presented:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>` or `X-API-Key`")
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(presented)
    request.state.principal = principal
    # Counted once the caller is known: per key and per client (RateLimit-* headers, 429).
    await enforce_request(request, principal)
    return principal


async def get_principal(request: Request, bearer: BearerDep, header_key: HeaderKeyDep) -> Principal:
    """Authenticate the presented key (Bearer or X-API-Key)."""
    return await _authenticate(request, bearer, header_key)


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: a client key (master, or user with `scope`)."""

    async def dependency(
        request: Request, bearer: BearerDep, header_key: HeaderKeyDep
    ) -> Principal:
        principal = await _authenticate(request, bearer, header_key)
        # The same rule the socket gateways apply (app/auth/scopes.py).
        scopes.require(principal, scope)
        return principal

    return dependency


async def require_master(
    request: Request, bearer: BearerDep, header_key: HeaderKeyDep
) -> Principal:
    """A master key of a client."""
    principal = await _authenticate(request, bearer, header_key)
    if not principal.is_master:
        raise Forbidden("This call needs the client's master key")
    return principal


async def master_of(request: Request) -> Principal:
    """`require_master` called directly (app/api/direct_route.py): the same schemes, in
    the same order, and the same checks."""
    return await require_master(request, await _bearer(request), await _header(request))


async def scoped_of(request: Request, scope: str) -> Principal:
    """`require_scope(scope)` called directly (app/api/direct_route.py): the same schemes,
    in the same order, and the same checks."""
    principal = await _authenticate(request, await _bearer(request), await _header(request))
    scopes.require(principal, scope)
    return principal


async def require_client_key(
    request: Request, bearer: BearerDep, header_key: HeaderKeyDep
) -> Principal:
    """Any key of a client (master or user), not the admin key."""
    principal = await _authenticate(request, bearer, header_key)
    if principal.kind is KeyKind.admin:
        raise Forbidden("The admin key only manages clients")
    return principal


async def require_user(request: Request, bearer: BearerDep, header_key: HeaderKeyDep) -> Principal:
    """A user key."""
    principal = await _authenticate(request, bearer, header_key)
    if not principal.is_user:
        raise Forbidden("This call needs a user key")
    return principal


async def require_admin(request: Request, bearer: BearerDep, header_key: HeaderKeyDep) -> Principal:
    """The operator's ADMIN_API_KEY; with none configured, admin calls are forbidden."""
    if not (await get_settings(request)).ADMIN_API_KEY:
        raise Forbidden("Admin calls are disabled: ADMIN_API_KEY is not configured")
    principal = await _authenticate(request, bearer, header_key)
    if principal.kind is not KeyKind.admin:
        raise Forbidden("This call needs the ADMIN_API_KEY")
    return principal


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]
LimitsDep = Annotated[RateLimitPolicies, Depends(get_limits)]
MasterDep = Annotated[Principal, Depends(require_master)]
ClientKeyDep = Annotated[Principal, Depends(require_client_key)]
UserDep = Annotated[Principal, Depends(require_user)]
AdminDep = Annotated[Principal, Depends(require_admin)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
BusDep = Annotated[EventBus, Depends(get_bus)]
SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]
PublicBaseUrlDep = Annotated[str, Depends(get_public_base_url)]
