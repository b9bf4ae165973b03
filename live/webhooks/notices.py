"""Telling a brand that one of its webhook endpoints was disabled: a mail to its admins."""

from __future__ import annotations

import logging

from live.accounts.accounts import AccountStore, Grant
from live.accounts.auth import Role
from live.accounts.mail import Mail, Mailer, MailError
from live.accounts.teams import TeamStore

__all__ = ["DisabledNotice"]

log = logging.getLogger(__name__)


class DisabledNotice:
    """Mails the admins of the endpoint's brand (the operator's endpoints: the log only)."""

    def __init__(self, teams: TeamStore, accounts: AccountStore, mailer: Mailer,
                 base_url: str) -> None:
        self._teams = teams
        self._accounts = accounts
        self._mailer = mailer
        self._base_url = base_url

    async def __call__(self, endpoint: dict[str, str]) -> None:
        owner = endpoint.get("owner", "")
        if not owner.startswith("brand:"):
            return
        brand = owner.removeprefix("brand:")
        text = (f"The webhook endpoint {endpoint.get('url', '')} of {brand} kept failing and "
                f"was disabled; nothing more is sent to it.\n\nSee its delivery log, resend "
                f"what it missed and enable it again: {self._base_url}/brand/{brand}/webhooks\n")
        for member in await self._teams.members(Grant(Role.BRAND, brand)):
            account = await self._accounts.get(member.account_id)
            if member.brand_role != "admin" or account is None:
                continue
            try:
                await self._mailer.send(Mail(account.email, "A webhook endpoint was disabled",
                                             text))
            except MailError:
                log.warning("could not mail %s about a disabled webhook endpoint", account.id)
