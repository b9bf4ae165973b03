"""Show alerts: when a show goes live, its creator's followers and the show's RSVPs get one
mail each ("<creator> is live: <title>", with the viewer page's link).

- **One sender, ever.** Whichever node first claims the show's `alerted` key (SET NX, no
  expiry) sends; every other node, a second trigger and a restart find it claimed and send
  nothing. The price is at-most-once: a node that dies mid-alert leaves the rest unmailed
  (an alert is a courtesy; a duplicate would be a nuisance on every restart).
- **In the background.** `stream_live` only starts a task and returns: going live never
  waits on the mailer, and a mailer failure is logged per mail and never reaches the
  stream. The tasks are owned here and cancelled by `close()`.
- **Bounded.** At most `max_recipients` per show, read with SSCAN; mailed in batches of
  `batch`, each checked against the accounts' own records first (live/accounts/follows.py),
  at `mails_per_s` per node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from live.accounts.accounts import AccountStore
from live.accounts.follows import FollowStore
from live.accounts.keys import alerted_key
from live.accounts.mail import Mail, Mailer, MailError

__all__ = ["ShowAlerts", "AlertLimits", "alert_mail"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AlertLimits:
    batch: int
    mails_per_s: float
    max_recipients: int


def alert_mail(to: str, stream: Mapping[str, Any], base_url: str) -> Mail:
    creator, title = stream["creator_id"], stream["title"]
    link = f"{base_url}/s/{stream['id']}"
    return Mail(to=to, subject=f"{creator} is live: {title}",
                text=f"{creator} is live now: {title}\n\nWatch and shop the show: {link}\n\n"
                     f"You get this because you follow {creator} or asked to be reminded of "
                     f"this show. Unfollow on {base_url}/c/{creator}.\n")


class ShowAlerts:
    def __init__(self, client: redis.Redis, follows: FollowStore, accounts: AccountStore,
                 mailer: Mailer, *, node: str, base_url: str, limits: AlertLimits) -> None:
        self._client = client
        self._follows = follows
        self._accounts = accounts
        self._mailer = mailer
        self._node = node
        self._base_url = base_url
        self._limits = limits
        self._tasks: set[asyncio.Task[int]] = set()

    def stream_live(self, stream: Mapping[str, Any]) -> asyncio.Task[int]:
        """Start the show's alert in the background (the hook StreamStore calls on go-live)."""
        task = asyncio.get_running_loop().create_task(self._run(dict(stream)),
                                                      name=f"alert-{stream['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, stream: dict[str, Any]) -> int:
        try:
            return await self.send(stream)
        except asyncio.CancelledError:
            raise
        except Exception:  # a Valkey outage mid-alert: logged, never the stream's problem
            log.exception("show alert for %s stopped", stream.get("id"))
            return 0

    async def send(self, stream: Mapping[str, Any]) -> int:
        """Claim the show's alert and mail its audience; returns how many mails went out
        (0 when another node or an earlier run has claimed it)."""
        if not await self._client.set(alerted_key(stream["id"]), self._node, nx=True):
            return 0
        audience = await self._follows.audience(stream["creator_id"], stream["id"],
                                                self._limits.max_recipients)
        sent = 0
        gap_s = 1.0 / self._limits.mails_per_s
        for i in range(0, len(audience), self._limits.batch):
            batch = await self._follows.still_wanted(audience[i:i + self._limits.batch],
                                                     stream["creator_id"], stream["id"])
            for account_id in batch:
                account = await self._accounts.get(account_id)
                if account is None:
                    continue
                try:
                    await self._mailer.send(alert_mail(account.email, stream, self._base_url))
                    sent += 1
                except MailError:
                    pass  # the mailer logged it; the others still get theirs
                await asyncio.sleep(gap_s)  # the pace, not a wait for anything
        log.info("show %s is live: %d alert mails sent", stream["id"], sent)
        return sent

    @property
    def in_flight(self) -> int:
        """Alerts still being sent by this node."""
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel alerts in flight (idempotent). A cancellation that lands early can be
        swallowed inside a client library (seen in tests: the alert carried on to its
        mail), so each one is cancelled again until it has ended."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=0.05)
