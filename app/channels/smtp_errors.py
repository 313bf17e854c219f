"""What a failed SMTP exchange means: the attempt's outcome, and whether the fallback server
should be tried.

Weather is retried (a refused or timed-out connection, a dropped session, an unresolvable
name, any 4xx, a temporary AUTH failure) and the fallback gets its chance. A configuration
that can never work fails the attempt at once with a reason a person can act on, instead of
being retried for hours: a 5xx, credentials the server rejects or AUTH it does not offer,
`security: starttls` against a server without STARTTLS, a TLS handshake or certificate that
fails, a target the address policy refuses, or a peer that is not an SMTP server at all (named
so, without echoing what it sent: the relay must not read other services' banners out).
"""

from __future__ import annotations

import ssl

import aiosmtplib

from app.channels.base import Outcome, OutcomeKind, truncate_reply
from app.channels.smtp_target import SmtpUnreachable
from app.channels.ssrf import TargetRefused, TargetUnresolvable

SECURITY_HINT = (
    'check `security`: "tls" is TLS from the first byte (port 465), "starttls" upgrades a '
    'plain session (port 587), "none" uses no TLS (a local catcher such as Mailpit on 1025)'
)
NOT_SMTP = "not an SMTP server: its answer is not an SMTP reply (check host and port)"
# The TLS failures that look like a dropped connection rather than a wrong setting.
_TLS_TRANSIENT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


class SmtpConfigError(Exception):
    """The server cannot be used as configured (no STARTTLS, no usable AUTH): permanent."""


# Everything opening, using or classifying a connection may raise for the other side's sake.
SMTP_FAILURES: tuple[type[BaseException], ...] = (
    aiosmtplib.SMTPException,
    OSError,
    TargetRefused,
    TargetUnresolvable,
    SmtpUnreachable,
    SmtpConfigError,
)


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    # aiosmtplib wraps a failed implicit-TLS connect in SMTPConnectError; STARTTLS's
    # handshake error comes through as is.
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _failed(
    error: str, response_code: int | None = None, reply: str | None = None
) -> tuple[Outcome, bool]:
    outcome = Outcome(OutcomeKind.FAILED, response_code=response_code, reply=reply, error=error)
    return outcome, False


def _retry(
    error: str, response_code: int | None = None, reply: str | None = None
) -> tuple[Outcome, bool]:
    outcome = Outcome(OutcomeKind.RETRY, response_code=response_code, reply=reply, error=error)
    return outcome, True


def _response(exc: aiosmtplib.SMTPResponseException) -> tuple[Outcome, bool]:
    code = exc.code
    if not 200 <= code <= 599:
        # aiosmtplib reports an unparseable line as code -1 with the line as the message.
        return _failed(NOT_SMTP)
    reply = truncate_reply(exc.message)
    error = f"SMTP {code}"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        error += ": authentication failed"
        if code >= 500:
            error += ", check username and password"
    if 400 <= code < 500:
        return _retry(error, response_code=code, reply=reply)
    return _failed(error, response_code=code, reply=reply)


def classify(exc: BaseException) -> tuple[Outcome, bool]:
    """The outcome of a failed send and whether the fallback server should be tried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, (TargetRefused, SmtpConfigError)):
        return _failed(str(exc))
    if isinstance(exc, (TargetUnresolvable, SmtpUnreachable)):
        return _retry(str(exc))
    tls = _tls_error(exc)
    if isinstance(tls, ssl.SSLCertVerificationError):
        return _failed(f"TLS certificate not accepted: {tls.verify_message or tls.reason}")
    if tls is not None and not isinstance(tls, _TLS_TRANSIENT):
        return _failed(f"TLS handshake failed ({tls.reason or tls}): {SECURITY_HINT}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _response(exc)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return _failed(f"SMTP: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return _retry("timeout: the server did not answer in time")
    if isinstance(exc, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError)):
        # aiosmtplib's own text names the socket it was handed ("port None"): say it plainly.
        return _retry("the server closed the connection")
    # Anything else from the network: the server may be back soon, the fallback up now.
    return _retry(f"{type(exc).__name__}: {exc}")
