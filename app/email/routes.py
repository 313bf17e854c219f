"""`/email-config`: the client's SMTP server for e-mail notifications (master key)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import MasterDep, ReadSessionDep, SecretBoxDep, SessionDep, SettingsDep
from app.core.openapi import problems
from app.email import service
from app.email.schemas import EmailConfigOut, EmailConfigPut, EmailTest, EmailTestResult

router = APIRouter(prefix="/email-config", tags=["email"])


@router.put("", response_model=EmailConfigOut, responses=problems(422))
async def put_email_config(
    body: EmailConfigPut,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
) -> EmailConfigOut:
    """Create or replace the configuration (passwords are stored encrypted, never returned).

    422 when a host is, or resolves to, a loopback/private address (unless the deployment
    sets SMTP_ALLOW_PRIVATE_TARGETS), a link-local or cloud metadata address (always), does
    not resolve, or is not in SMTP_ALLOWED_HOSTS when that is set."""
    row = await service.put_config(session, box, settings, principal.client_id, body)
    return EmailConfigOut.of(row)


@router.get("", response_model=EmailConfigOut, responses=problems(404))
async def get_email_config(principal: MasterDep, session: ReadSessionDep) -> EmailConfigOut:
    """The configuration, with `password_set` instead of the password."""
    return EmailConfigOut.of(await service.get_config(session, principal.client_id))


@router.delete("", status_code=204, responses=problems(404))
async def delete_email_config(principal: MasterDep, session: SessionDep) -> Response:
    """Remove the configuration (e-mail deliveries then fail: nothing to send through)."""
    await service.delete_config(session, principal.client_id)
    return Response(status_code=204)


@router.post("/test", response_model=EmailTestResult, responses=problems(404))
async def test_email_config(
    body: EmailTest,
    principal: MasterDep,
    session: SessionDep,
    box: SecretBoxDep,
    settings: SettingsDep,
) -> EmailTestResult:
    """Send a real test message to `to`. 200 either way: `ok` says whether a server accepted
    it, `code`/`reply` what it answered, `served_by` which one, `error` why not."""
    return await service.send_test(session, box, settings, principal.client_id, str(body.to))
