"""A real SMTP server (aiosmtpd) on port 0 in the test's event loop, keeping what it is sent.

Use the `smtp` fixture and point a node at it: `node_settings` -> {"smtp_url": smtp.url}.
`await smtp.next_mail(to)` waits (never sleeps) for the next mail to that address.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from conftest import UNIT

__all__ = ["Inbox", "Received", "smtp", "settings_with"]


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def code(self) -> str:
        match = re.search(r"sign-in code is ([0-9]{6})", self.text)
        assert match, self.text
        return match.group(1)

    @property
    def link(self) -> str:
        match = re.search(r"(https?://\S+/auth/email/verify\?\S+)", self.text)
        assert match, self.text
        return match.group(1)


@dataclass
class Inbox:
    url: str = ""
    mail: list[Received] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    taken: set[int] = field(default_factory=set)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        async with self.arrived:
            self.mail.append(Received(str(envelope.mail_from),
                                      [str(r) for r in envelope.rcpt_tos], parsed))
            self.arrived.notify_all()
        return "250 OK"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.mail if address in m.recipients]

    async def next_mail(self, address: str, timeout_s: float = 10.0) -> Received:
        """The first mail to `address` not taken yet, waiting for it if need be."""
        async def first() -> Received:
            async with self.arrived:
                while True:
                    for i, m in enumerate(self.mail):
                        if i not in self.taken and address in m.recipients:
                            self.taken.add(i)
                            return m
                    await self.arrived.wait()
        return await asyncio.wait_for(first(), timeout_s * UNIT)


@pytest.fixture
async def smtp() -> AsyncIterator[Inbox]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="inbox.test"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inbox.url = f"smtp://127.0.0.1:{port}"
    yield inbox
    server.close()
    await server.wait_closed()


def settings_with(inbox: Inbox, **more: Any) -> dict[str, Any]:
    return {"smtp_url": inbox.url, **more}
