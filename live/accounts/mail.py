"""Outgoing mail: sign-in codes and links today, invitations and show alerts later.

`SmtpMailer` sends through the server of `LIVECART_SMTP_URL` (`smtp://host:port`, STARTTLS
when the server offers it; `smtps://host:port`, TLS from the first byte; either with
`user:pass@`), with aiosmtplib. Without that setting the node uses `LogMailer`, which writes
each mail to its log at INFO, the code and link included: that is its point, on a developer's
machine. `mailer_for(settings)` picks one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from checkout.errors import LivecartError
from live.settings import Settings

__all__ = ["Mail", "Mailer", "MailError", "SmtpMailer", "LogMailer", "mailer_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


class MailError(LivecartError):
    """The mail could not be handed to the SMTP server (it is down, refused it, timed out)."""


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Hand `mail` over for delivery, or raise `MailError`."""


class SmtpMailer:
    """One SMTP connection per mail: sign-in mails are rare, and no connection is held."""

    def __init__(self, url: str, sender: str, *, timeout_s: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("LIVECART_SMTP_URL is smtp://[user:pass@]host[:port] or smtps://...")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout_s = timeout_s

    @property
    def where(self) -> str:
        """The server, without credentials (for logs)."""
        return f"{'smtps' if self._tls else 'smtp'}://{self._host}:{self._port}"

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2].strip("> ") or None)
        message.set_content(mail.text)
        try:
            await aiosmtplib.send(message, hostname=self._host, port=self._port,
                                  username=self._user, password=self._password,
                                  use_tls=self._tls, start_tls=None if not self._tls else False,
                                  timeout=self._timeout_s)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning("mail via %s failed: %s", self.where, type(exc).__name__)
            raise MailError(f"mail via {self.where} failed: {type(exc).__name__}") from exc


class LogMailer:
    """For a node without SMTP: the mail goes to the log, whole."""

    async def send(self, mail: Mail) -> None:
        log.info("mail to %s (no LIVECART_SMTP_URL set, so it is logged, not sent)\n"
                 "Subject: %s\n\n%s", mail.to, mail.subject, mail.text)


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp_url:
        return SmtpMailer(settings.smtp_url, settings.mail_from, timeout_s=settings.mail_timeout_s)
    return LogMailer()
