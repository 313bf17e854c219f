"""The MIME message of an e-mail delivery, rendered once per content and reused per recipient.

Python's `email` package costs ~1.5 ms of CPU per message (header parsing on every
assignment, `set_content`, the generator): more than the rest of a delivery together. A
notification's e-mail deliveries differ only in `To`, `Date` and `Message-ID`, so the rest
(From, Subject, the MIME parts) is built and flattened once per content and server, and
each message is those three header lines in front of the cached bytes. An address or id
that is not plain ASCII of the shapes below takes the `email` package's path, which encodes
it properly (and refuses a line break in a header: header injection).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib
from aiosmtplib.email import extract_sender, flatten_message

from app.channels.base import SmtpServer
from app.core.clock import utcnow

# What may stand in a header unencoded and unquoted (RFC 5322 dot-atom-ish, ASCII only).
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+\Z")
_PLAIN_MESSAGE_ID = re.compile(r"<[A-Za-z0-9._-]+@[A-Za-z0-9.-]+>\Z")
# Distinct contents kept rendered (one per notification in flight, in practice).
CACHE_SIZE = 64


def build_message(
    server: SmtpServer, to: str, content: dict[str, Any], message_id: str
) -> EmailMessage:
    """The MIME message: multipart/alternative (text, then html) when both are given."""
    msg = _common(server, content)
    msg["To"] = to
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id
    return msg


def _common(server: SmtpServer, content: dict[str, Any]) -> EmailMessage:
    """Everything but the per-recipient headers (To, Date, Message-ID)."""
    msg = EmailMessage()
    msg["From"] = content.get("from") or formataddr((server.from_name or "", server.from_email))
    msg["Subject"] = content.get("subject", "")
    text, html = content.get("text"), content.get("html")
    # Clients show the last alternative they can render, so the richer html goes last.
    msg.set_content(text if text is not None else "")
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    return msg


@dataclass(slots=True)
class _Template:
    message: EmailMessage
    sender: str | None
    flat: dict[bool, bytes] = field(default_factory=dict)  # 8BITMIME offered → bytes

    def flattened(self, eight_bit: bool) -> bytes:
        raw = self.flat.get(eight_bit)
        if raw is None:
            # As aiosmtplib's send_message flattens (ASCII addresses: no SMTPUTF8).
            raw = self.flat[eight_bit] = flatten_message(
                self.message, cte_type="8bit" if eight_bit else "7bit"
            )
        return raw


@dataclass(frozen=True, slots=True)
class Prepared:
    """One delivery's message, ready to go over any session."""

    to: str
    message_id: str
    template: _Template | None  # None: `full` is the whole message
    full: EmailMessage | None

    async def send(self, smtp: aiosmtplib.SMTP) -> str:
        """Send it; the server's reply to DATA (aiosmtplib raises on anything but 2xx)."""
        if self.template is None:
            assert self.full is not None
            _, reply = await smtp.send_message(self.full)
            return reply
        assert self.template.sender is not None
        eight_bit = smtp.supports_extension("8bitmime")
        head = (
            f"To: {self.to}\r\nDate: {format_datetime(utcnow())}\r\n"
            f"Message-ID: {self.message_id}\r\n"
        ).encode("ascii")
        _, reply = await smtp.sendmail(
            self.template.sender,
            [self.to],
            head + self.template.flattened(eight_bit),
            mail_options=["BODY=8BITMIME"] if eight_bit else None,
        )
        return reply


class MessageCache:
    """Renders messages, reusing the common part per (server, content); one event loop."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._templates: OrderedDict[tuple[Any, ...], _Template] = OrderedDict()

    def prepare(
        self, server: SmtpServer, to: str, content: dict[str, Any], message_id: str
    ) -> Prepared:
        """The delivery's message; ValueError/TypeError when the content cannot be sent."""
        if not (_PLAIN_ADDRESS.match(to) and _PLAIN_MESSAGE_ID.match(message_id)):
            return Prepared(to, message_id, None, build_message(server, to, content, message_id))
        template = self._template(server, content)
        if template.sender is None or not template.sender.isascii():
            return Prepared(to, message_id, None, build_message(server, to, content, message_id))
        return Prepared(to, message_id, template, None)

    def _template(self, server: SmtpServer, content: dict[str, Any]) -> _Template:
        key = (
            server,
            content.get("from"),
            content.get("subject"),
            content.get("text"),
            content.get("html"),
        )
        template = self._templates.get(key)
        if template is not None:
            self._templates.move_to_end(key)
            return template
        message = _common(server, content)
        template = _Template(message, extract_sender(message))
        self._templates[key] = template
        if len(self._templates) > self._size:
            self._templates.popitem(last=False)
        return template
