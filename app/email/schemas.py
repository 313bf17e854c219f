"""Request and response shapes of `/email-config`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from app.email.models import EmailConfig

# A host name (RFC 1123 labels) or an IPv4/IPv6 literal; nothing that could smuggle a line.
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^[0-9A-Fa-f:.]+$")
Security = Literal["none", "starttls", "tls"]


def _no_control(value: str | None) -> str | None:
    # CR/LF in a header or an SMTP command is header/command injection; no control character
    # belongs in any of these fields.
    if value is not None and any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError("must not contain line breaks or control characters")
    return value


class SmtpServerIn(BaseModel):
    """One SMTP server and the sender used through it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(strict=True, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=512, description="Never returned.")
    security: Security = "starttls"
    from_email: EmailStr
    from_name: str | None = Field(default=None, max_length=200)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("username", "password", "from_name")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _no_control(value)


class EmailConfigPut(SmtpServerIn):
    """`PUT /email-config`: replaces the whole configuration (send the password each time)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "host": "smtp.example.com",
                    "port": 587,
                    "username": "apikey",
                    "password": "…",
                    "security": "starttls",
                    "from_email": "noreply@example.com",
                    "from_name": "Example",
                    "fallback": {
                        "host": "smtp.backup.example.net",
                        "port": 465,
                        "security": "tls",
                        "from_email": "noreply@example.com",
                    },
                }
            ]
        },
    )

    fallback: SmtpServerIn | None = Field(
        default=None, description="Tried when the primary refuses, times out or answers 4xx."
    )


class SmtpServerOut(BaseModel):
    """A server as the API shows it: whether a password is set, never the password."""

    host: str
    port: int
    username: str | None
    password_set: bool
    security: str
    from_email: str
    from_name: str | None


class EmailConfigOut(SmtpServerOut):
    """The client's e-mail configuration."""

    fallback: SmtpServerOut | None
    updated_at: datetime

    @classmethod
    def of(cls, row: EmailConfig) -> EmailConfigOut:
        """From the row."""
        fallback = None
        if row.fallback:
            f = row.fallback
            fallback = SmtpServerOut(
                host=f["host"],
                port=f["port"],
                username=f.get("username"),
                password_set=bool(f.get("password_sealed")),
                security=f["security"],
                from_email=f["from_email"],
                from_name=f.get("from_name"),
            )
        return cls(
            host=row.host,
            port=row.port,
            username=row.username,
            password_set=row.password_sealed is not None,
            security=row.security,
            from_email=row.from_email,
            from_name=row.from_name,
            fallback=fallback,
            updated_at=row.updated_at,
        )


class EmailTest(BaseModel):
    """`POST /email-config/test`."""

    model_config = ConfigDict(extra="forbid")

    to: EmailStr


class EmailTestResult(BaseModel):
    """How the test went: `ok` false carries the reason (the server's reply, or why none)."""

    ok: bool
    code: int | None = Field(description="The SMTP reply code, when a server answered.")
    reply: str | None = Field(description="The SMTP reply text.")
    served_by: str | None = Field(description="`primary` or `fallback`: who answered last.")
    error: str | None = Field(description="Why it failed, when it did.")
    duration_ms: float
