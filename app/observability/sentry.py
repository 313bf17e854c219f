"""Sentry for the API and the worker: errors only, no PII unless asked for."""

from __future__ import annotations

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration

from app.core.config import Settings


def init_sentry(settings: Settings, component: str) -> bool:
    """Initialise Sentry when SENTRY_DSN is set; return whether it was."""
    if not settings.SENTRY_DSN:
        return False
    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.ENVIRONMENT,
        send_default_pii=False,
        # Frame locals hold ASGI scopes with raw Authorization headers: never ship them.
        include_local_variables=False,
        server_name=component,
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            CeleryIntegration(),
            SqlalchemyIntegration(),
        ],
    )
    sentry_sdk.set_tag("component", component)
    return True
