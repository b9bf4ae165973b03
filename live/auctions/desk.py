"""The money side of a show's auctions (docs/auctions.md): the lot put on hold at the
opening and given back when nothing sells, the winner's order through the buy path at the
hammer price, the second chance to the runner-up, and the closer: a loop on every node
that closes what is due and finishes it.

Every step is idempotent (the lot by its id, the order by the key `auction/<stream>/<id>`,
the auction's own moves once in its script), so two nodes doing the same step make one
move, and a node that dies between two steps leaves the next one to any closer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as redis

from checkout.auction_lots import AuctionLots, lot_id
from checkout.buy import AuctionSale, BuyRequest, BuyResult, BuyService
from checkout.errors import Refused
from checkout.ids import BuyerId, CreatorId, ProductId, StreamId, VariantId
from checkout.order_states import PENDING, OrderState
from checkout.store.keys import AUCTIONS_DUE
from checkout.store.replies import members
from checkout.tasks import repeat, stop_task
from checkout.wallets import WalletStore
from live.auctions.store import AuctionRefused, AuctionStore, AuctionTerms
from live.streams.store import StreamStore

__all__ = ["AuctionDesk", "DeskLimits", "charge_key"]

log = logging.getLogger(__name__)

Outcome = Literal["paid", "pending", "failed"]
_PAID = (OrderState.AUTHORIZED, OrderState.PAID)  # authorized: the sale stands, capture owed


@dataclass(frozen=True, slots=True)
class DeskLimits:
    interval_s: float = 0.5  # how often the closer looks for due auctions
    batch: int = 100  # due auctions one look handles at most
    second_chance_ms: int = 900_000  # the runner-up's window to accept
    retry_ms: int = 5_000  # a charge whose outcome is unknown is looked at again after this


def charge_key(stream: StreamId | str, auction: str) -> str:
    """The Idempotency-Key of an auction's order: every node charging it makes one order."""
    return f"auction/{stream}/{auction}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _outcome(result: BuyResult | None) -> Outcome:
    if result is None:
        return "failed"
    if result.order.state in _PAID:
        return "paid"
    return "pending" if result.order.state in PENDING else "failed"


class AuctionDesk:
    def __init__(self, client: redis.Redis, auctions: AuctionStore, lots: AuctionLots,
                 buys: BuyService, wallets: WalletStore, streams: StreamStore,
                 limits: DeskLimits) -> None:
        self._client = client
        self._auctions = auctions
        self._lots = lots
        self._buys = buys
        self._wallets = wallets
        self._streams = streams
        self._limits = limits
        self._task: asyncio.Task[None] | None = None

    # -- the host's moves, with the lot ------------------------------------------------

    async def create(self, stream: StreamId, terms: AuctionTerms, *,
                     open_now: bool) -> dict[str, Any]:
        """Create it scheduled, then (open_now) open it: the lot is taken between the two,
        so a crash leaves a scheduled auction the host can open or cancel."""
        reply = await self._auctions.create(stream, terms, open_now=False)
        if not open_now:
            return reply
        try:
            return await self.open(stream, terms.id)
        except Refused:  # no unit to hold: not an auction after all
            await self.cancel(stream, terms.id)
            raise

    async def open(self, stream: StreamId, auction: str) -> dict[str, Any]:
        """Take the lot (409 `sold-out` without a unit), file the auction in the closer's
        index at a lower bound of its deadline, then start its clock."""
        a = await self._get(stream, auction)
        if a["state"] == "scheduled":
            taken = await self._lots.take(ProductId(a["product"]), lot_id(stream, auction),
                                          VariantId(a["variant"]))
            if taken == "returned":
                raise AuctionRefused("not-scheduled", "the auction was cancelled")
            await self._file(stream, auction, _now_ms() + a["duration_ms"])
        return await self._auctions.open(stream, auction)  # refuses what is not scheduled

    async def cancel(self, stream: StreamId, auction: str) -> dict[str, Any]:
        """Cancel (before any bid), then give the lot back; a crash in between leaves the
        auction in the index, where the closer gives it back."""
        reply = await self._auctions.cancel(stream, auction)
        await self._refile(lot_id(stream, auction), await self._return_lot(
            stream, await self._get(stream, auction), _now_ms()))
        return reply

    async def accept(self, stream: StreamId, auction: str, buyer: BuyerId) -> BuyResult:
        """The runner-up takes the second-chance offer: their order at their max, now.
        Refused: `no-offer`, `offer-lapsed`; `payment-failed` if no order could be made."""
        await self._auctions.accept(stream, auction, bidder=buyer)
        a = await self._get(stream, auction)
        result = await self._charge(stream, a, buyer, a["second_minor"])
        again = await self._after_charge(stream, a, buyer, result, _now_ms(), last=True)
        await self._refile(lot_id(stream, auction), again)
        if result is None:
            raise Refused(409, "payment-failed", "the order could not be made; the lot "
                          "went back to stock")
        return result

    # -- the closer --------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="auction-closer")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _run(self) -> None:
        await repeat(self.close_due, self._limits.interval_s, log,
                     "auction closer failed; retrying")

    async def close_due(self, now_ms: int | None = None) -> int:
        """Finish every auction due by now (at most `batch`): close it, charge it, offer or
        return its lot; re-file what is not over at when to look again. Returns how many
        it looked at."""
        now_ms = _now_ms() if now_ms is None else now_ms
        due = members(await self._client.zrangebyscore(
            AUCTIONS_DUE, "-inf", now_ms, start=0, num=self._limits.batch))
        for member in due:
            stream, _, auction = member.partition("/")
            try:
                again = await self.step(StreamId(stream), auction, now_ms)
            except Refused as exc:  # refused: look again later, logged
                log.warning("auction %s: %s", member, exc)
                again = now_ms + self._limits.retry_ms
            await self._refile(member, again)
        return len(due)

    async def step(self, stream: StreamId, auction: str, now_ms: int) -> int | None:
        """One auction's next step at `now_ms`; returns when to look at it again (ms), None
        once its lot is sold or back in stock."""
        a = await self._auctions.get(stream, auction)
        if a is None:
            return None
        if a["state"] == "scheduled":  # filed, then the open did not happen (yet)
            return now_ms + a["duration_ms"]
        if a["state"] == "open":
            try:
                await self._auctions.close(stream, auction, now_ms)
            except AuctionRefused as exc:
                if exc.kind != "not-due":
                    raise
                return int((await self._get(stream, auction))["ends_ms"])  # extended
            a = await self._get(stream, auction)
        return await self._after_close(stream, a, now_ms)

    async def _after_close(self, stream: StreamId, a: dict[str, Any],
                           now_ms: int) -> int | None:
        if a.get("lot") in ("sold", "returned"):
            return None
        if a["state"] == "cancelled" or a.get("result") != "sold":
            return await self._return_lot(stream, a, now_ms)
        second = a.get("second_state") or ""
        if not second:  # the winner's charge
            result = await self._charge(stream, a, a["winner"], a["price_minor"])
            return await self._after_charge(stream, a, a["winner"], result, now_ms, last=False)
        if second == "offered":
            if now_ms < a["second_until_ms"]:
                return int(a["second_until_ms"])
            second = (await self._auctions.lapse(stream, a["id"], now_ms))["second_state"]
        if second == "accepted":
            result = await self._charge(stream, a, a["second"], a["second_minor"])
            return await self._after_charge(stream, a, a["second"], result, now_ms, last=True)
        return await self._return_lot(stream, a, now_ms)  # lapsed, or nobody to offer it to

    async def _after_charge(self, stream: StreamId, a: dict[str, Any], buyer: str,
                            result: BuyResult | None, now_ms: int, *,
                            last: bool) -> int | None:
        """Paid: the lot is sold. Unknown: look again. Failed: the winner's lot goes to the
        runner-up (once), the runner-up's back to stock."""
        outcome = _outcome(result)
        if outcome == "pending":
            return now_ms + self._limits.retry_ms
        if outcome == "paid":
            assert result is not None
            await self._auctions.settle(stream, a["id"], lot="sold", order=result.order.id,
                                        buyer=buyer)
            return None
        if not last:
            offer = await self._auctions.second_chance(
                stream, a["id"], self._limits.second_chance_ms, now_ms)
            if offer["second_state"] in ("offered", "accepted"):
                return int(offer["second_until_ms"])
        return await self._return_lot(stream, a, now_ms)

    async def _charge(self, stream: StreamId, a: dict[str, Any], buyer: str,
                      price_minor: int) -> BuyResult | None:
        """The order of the lot at `price_minor`, through the buy path with the buyer's saved
        card; None when none can be made (no wallet, the lot or product gone)."""
        show = await self._streams.get(stream)
        try:
            payment = (await self._wallets.get(BuyerId(buyer))).pay_with()
            return await self._buys.buy(BuyRequest(
                buyer=BuyerId(buyer), product=ProductId(a["product"]),
                variant=VariantId(a["variant"]), quantity=1,
                idempotency_key=charge_key(stream, a["id"]), channel="auction", stream=stream,
                payment_token=payment.token, snapshot=payment.snapshot,
                auction=AuctionSale(lot_id(stream, a["id"]), price_minor,
                                    CreatorId(show["creator_id"]) if show else "")))
        except Refused as exc:
            log.info("auction %s/%s: no order for %s: %s", stream, a["id"], buyer, exc.kind)
            return None

    async def _return_lot(self, stream: StreamId, a: dict[str, Any],
                          now_ms: int) -> int | None:
        """Give the lot back to stock (once): done (None), or look again while an order
        still holds its unit (its payment is undecided)."""
        state = await self._lots.give_back(ProductId(a["product"]), lot_id(stream, a["id"]),
                                           VariantId(a["variant"]))
        if state == "order":
            return now_ms + self._limits.retry_ms
        await self._auctions.settle(stream, a["id"], lot="returned")
        return None

    async def _file(self, stream: StreamId, auction: str, at_ms: int) -> None:
        await self._client.zadd(AUCTIONS_DUE, {lot_id(stream, auction): at_ms})

    async def _refile(self, member: str, again: int | None) -> None:
        """Done: out of the index. Not yet: look again at `again` (only if still filed: a
        node that finished it meanwhile removed it for good)."""
        if again is None:
            await self._client.zrem(AUCTIONS_DUE, member)
        else:
            await self._client.zadd(AUCTIONS_DUE, {member: again}, xx=True)

    async def _get(self, stream: StreamId, auction: str) -> dict[str, Any]:
        a = await self._auctions.get(stream, auction)
        if a is None:
            raise Refused(404, "not-found", f"no auction {auction} in stream {stream}")
        return a
