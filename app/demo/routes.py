"""`/demo`: the browser demo's page and files, its login and a name lookup.

Mounted only when DEMO_ENABLED is set (otherwise `/demo` is the ordinary 404 problem), and
left out of the OpenAPI document: it is an example client's backend, not the API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from app.api.deps import (
    AuthenticatorDep,
    BusDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
    UserDep,
)
from app.core.config import Settings
from app.core.errors import NotFound, Unprocessable
from app.demo import service
from app.demo.schemas import DemoLogin, DemoNames, DemoSession
from app.ratelimit.policies import hit_demo_login
from app.tenants import service as tenants

router = APIRouter(prefix="/demo", include_in_schema=False)
MAX_NAME_LOOKUPS = 100
# The page loads only its own files and talks only to its own origin (REST and Socket.IO).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


@router.get("")
async def page(settings: SettingsDep) -> FileResponse:
    """The chat page."""
    return FileResponse(settings.demo_dir / "index.html", headers=PAGE_HEADERS)


@router.get("/")
async def page_with_slash(request: Request) -> RedirectResponse:
    """`/demo/` → `/demo` (308, query kept): the address people type for a page. The API's
    own paths stay exact (no slash redirects, app/core/errors.py); this is the one page."""
    target = request.scope.get("root_path", "") + "/demo"
    if request.url.query:
        target += f"?{request.url.query}"
    return RedirectResponse(target, status_code=308)


@router.post("/session", response_model=DemoSession)
async def login(
    body: DemoLogin,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bus: BusDep,
    authenticator: AuthenticatorDep,
) -> DemoSession:
    """Sign in as the demo user named `display_name`: a user key of the demo client."""
    await hit_demo_login(request, request.client.host if request.client else "unknown")
    client_id = await service.demo_client_id(
        session, settings.DEMO_CLIENT_SLUG, settings.BCRYPT_ROUNDS
    )
    key, user_id, rooms, expires_at = await service.demo_login(
        session,
        bus,
        authenticator,
        client_id=client_id,
        display_name=body.display_name,
        rounds=settings.BCRYPT_ROUNDS,
        member_ids_max=settings.ROOM_MEMBER_IDS_MAX,
    )
    return DemoSession(
        api_key=key,
        user_id=user_id,
        display_name=body.display_name,
        scopes=service.DEMO_SCOPES,
        expires_at=expires_at,
        rooms=rooms,
    )


@router.get("/users", response_model=DemoNames)
async def names(
    principal: UserDep,
    session: ReadSessionDep,
    settings: SettingsDep,
    ids: Annotated[str, Query(min_length=1, max_length=MAX_NAME_LOOKUPS * 27)],
) -> DemoNames:
    """Display names of demo users (`?ids=a,b,c`), for a demo user's key only: the API
    shows users to master keys alone, and the page must put names on messages."""
    demo = await tenants.find_client_by_slug(session, settings.DEMO_CLIENT_SLUG)
    if demo is None or demo.id != principal.client_id:
        raise NotFound("Only the demo client's users can look up names here")
    wanted = list(dict.fromkeys(i for i in ids.split(",") if i))
    if len(wanted) > MAX_NAME_LOOKUPS:
        raise Unprocessable(f"At most {MAX_NAME_LOOKUPS} ids at a time")
    return DemoNames(names=await service.display_names(session, demo.id, wanted))


def install_demo(app: FastAPI, settings: Settings) -> None:
    """Serve the demo at /demo (page, login, names) and its files at /demo/static."""
    app.include_router(router)
    app.mount("/demo/static", StaticFiles(directory=settings.demo_dir), name="demo-static")
