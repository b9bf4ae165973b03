"""HTTP endpoints of a show's live auctions (docs/auctions.md): the host puts a lineup
product up, opens and cancels it; signed-in buyers with a saved wallet bid (the
Idempotency-Key is the bid id, so a retried bid is one bid); the seller and the host read
the bid log. Every change is one step of auction.lua, its event reaching every screen."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints
from starlette.responses import Response

from checkout.ids import DEFAULT_VARIANT, BuyerId, ProductId, StreamId, is_valid_id
from checkout.models import StrictModel
from live.accounts.auth import Role
from live.auctions.store import AuctionTerms
from live.web.api import Api, Call, Param, json_response
from live.web.buy_api import IDEMPOTENCY_KEY, buy_response, payment_of
from live.web.problems import Problem
from live.web.stream_lookup import hosted_stream, stream_of

__all__ = ["register"]

AUCTION = Param("auction", "path", Annotated[str, StringConstraints(pattern=r"^a_[0-9a-f]{12}$")])
Minor = Annotated[int, Field(ge=1, le=10**12)]
# The bid log's pages (docs/limits.md): newest first, older than `before` (an entry's id)
BIDS_BEFORE = Param("before", "query",
                    Annotated[str, StringConstraints(pattern=r"^([0-9]{1,15}-[0-9]{1,10})?$")],
                    default="")
BIDS_LIMIT = Param("limit", "query", Annotated[int, Field(ge=1, le=1000)], default=100)
_HOSTS = (Role.CREATOR, Role.OPERATOR)


class AuctionIn(StrictModel):
    product_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    variant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = DEFAULT_VARIANT
    start_minor: Minor
    reserve_minor: Annotated[int, Field(ge=0, le=10**12)] = 0
    duration_s: Annotated[int, Field(ge=10, le=3600)] = 60
    format: Literal["standard", "sudden_death"] = "standard"
    extend_s: Annotated[int, Field(ge=5, le=60)] = 15
    # [[below_minor or -1, step_minor], ...]: pairs, as JSON has them (a strict model takes
    # no list for a tuple), checked by _increments_ok
    increments: Annotated[list[Annotated[list[Annotated[int, Field(ge=-1, le=10**12)]],
                                         Field(min_length=2, max_length=2)]],
                          Field(min_length=1, max_length=20)] | None = None
    open: bool = True  # False: scheduled, taking pre-bids until the host opens it


class BidIn(StrictModel):
    max_minor: Minor  # the most the bidder will pay: proxy bidding bids for them up to it


def _increments_ok(bands: list[list[int]]) -> bool:
    """Ascending bounds, the last one open (-1), every step positive."""
    bounds = [b for b, _ in bands]
    return bounds[-1] == -1 and all(b > 0 for b in bounds[:-1]) and bounds[:-1] == sorted(
        set(bounds[:-1])) and all(step > 0 for _, step in bands)


def register(api: Api) -> None:
    @api.endpoint("POST", "/streams/{stream}/auctions", status=201, body=AuctionIn,
                  summary="Auction a lineup product (open now, or scheduled for pre-bids)",
                  tag="auctions", roles=_HOSTS)
    async def create_auction(call: Call[AuctionIn]) -> Response:
        stream, body = await hosted_stream(call), call.body
        if stream["state"] not in ("scheduled", "live"):
            raise Problem(409, "stream-ended", "the stream has ended")
        if body.open and stream["state"] != "live":
            raise Problem(409, "not-live", "an auction opens while the stream is live")
        if body.product_id not in stream["lineup"]:
            raise Problem(422, "not-in-lineup", f"{body.product_id} is not in this stream's lineup")
        product = await call.services.catalog.product(ProductId(body.product_id))
        variants = [v["id"] for v in (product or {}).get("variants") or []]
        if product is None or body.variant_id not in variants:
            raise Problem(422, "unknown-variant", f"no variant {body.variant_id} of {body.product_id}")
        if body.increments is not None and not _increments_ok(body.increments):
            raise Problem(422, "bad-increments", "increments: ascending bounds, the last "
                          "one -1 (no bound), every step at least 1")
        if body.reserve_minor and body.reserve_minor < body.start_minor:
            raise Problem(422, "bad-reserve", "the reserve is below the starting price")
        terms = AuctionTerms(
            id="a_" + secrets.token_hex(6), product=body.product_id, variant=body.variant_id,
            currency=str(product["currency"]), start_minor=body.start_minor,
            reserve_minor=body.reserve_minor, duration_ms=body.duration_s * 1000,
            format=body.format, extend_ms=body.extend_s * 1000,
            seller=f"brand:{product['brand_id']}",
            increments=tuple((b, s) for b, s in body.increments) if body.increments else None)
        # Named first: a snapshot taken in between has no card yet and takes the events.
        await call.services.streams.set_auction(stream["id"], terms.id)
        reply = await call.services.desk.create(stream["id"], terms, open_now=body.open)
        return json_response({"id": terms.id, **_public(reply)}, 201)

    @api.endpoint("GET", "/streams/{stream}/auctions/{auction}", params=(AUCTION,),
                  summary="An auction as viewers see it (bidders as paddles)", tag="auctions")
    async def get_auction(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        auction = await call.services.auctions.get(stream["id"], call.param("auction"))
        if auction is None:
            raise Problem(404, "not-found", "no such auction")
        return json_response(await call.services.auctions.public(stream["id"], auction))

    @api.endpoint("POST", "/streams/{stream}/auctions/{auction}/open", params=(AUCTION,),
                  summary="Start a scheduled auction's clock", tag="auctions", roles=_HOSTS)
    async def open_auction(call: Call[Any]) -> Response:
        stream = await hosted_stream(call)
        if stream["state"] != "live":
            raise Problem(409, "not-live", "an auction opens while the stream is live")
        reply = await call.services.desk.open(stream["id"], call.param("auction"))
        return json_response(_public(reply))

    @api.endpoint("POST", "/streams/{stream}/auctions/{auction}/cancel", params=(AUCTION,),
                  summary="Cancel an auction before its first bid (the host or the seller)",
                  tag="auctions", roles=(Role.CREATOR, Role.BRAND, Role.OPERATOR))
    async def cancel_auction(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        auction = await _auction(call, stream)
        _host_or_seller(call, stream, auction, "only the host or the seller cancels an auction")
        reply = await call.services.desk.cancel(stream["id"], auction["id"])
        return json_response(_public(reply))

    @api.endpoint("POST", "/streams/{stream}/auctions/{auction}/bids", status=201, body=BidIn,
                  params=(AUCTION, IDEMPOTENCY_KEY), tag="auctions", roles=(Role.BUYER,),
                  summary="Bid (a max: proxy bidding bids for you up to it); the "
                          "Idempotency-Key is the bid's id")
    async def place_bid(call: Call[BidIn]) -> Response:
        services = call.services
        stream_id = StreamId(call.param("stream"))
        if not is_valid_id(stream_id):
            raise Problem(404, "not-found", "no such stream")
        buyer = BuyerId(call.need_principal().subject)
        # Whether the stream exists and the buyer's wallet are both sent before either is
        # awaited: one pipeline, one round trip (stream_of's read is the whole stream).
        exists = services.streams.start_exists(stream_id)
        wallet_read = services.wallets.start_get(buyer)
        try:
            wallet = await wallet_read  # the same pipeline's answer: exists is in by then
        finally:
            found = await exists  # collected even when the wallet's read failed
        if not found:
            raise Problem(404, "not-found", "no such stream")
        wallet.pay_with()  # 409 wallet-missing: a winner is charged at once
        reply = await services.auctions.bid(  # a refusal: 409 with its `kind`
            stream_id, call.param("auction"), bidder=buyer, user=f"buyer:{buyer}",
            bid_id=call.param(IDEMPOTENCY_KEY.name), max_minor=call.body.max_minor)
        return json_response({k: reply[k] for k in ("outcome", "high", "paddle", "price_minor",
                                                    "max_minor", "ends_ms", "bids")
                              if k in reply}, 201)

    @api.endpoint("POST", "/streams/{stream}/auctions/{auction}/second-chance", status=201,
                  params=(AUCTION,), tag="auctions", roles=(Role.BUYER,),
                  summary="The runner-up accepts a second-chance offer: their order at "
                          "their max, paid with their saved card")
    async def accept_second_chance(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        buyer = BuyerId(call.need_principal().subject)
        await payment_of(call, buyer)  # 409 wallet-missing
        result = await call.services.desk.accept(stream["id"], call.param("auction"), buyer)
        return buy_response(call, result)

    @api.endpoint("GET", "/streams/{stream}/auctions/{auction}/bids",
                  params=(AUCTION, BIDS_LIMIT, BIDS_BEFORE),
                  summary="The bid log, newest first (a page older than `before`): who bid "
                          "what when, and why a bid was refused",
                  tag="auctions", roles=(Role.CREATOR, Role.BRAND, Role.OPERATOR))
    async def auction_bids(call: Call[Any]) -> Response:
        stream = await stream_of(call)
        auction = await _auction(call, stream)
        _host_or_seller(call, stream, auction, "only the host and the seller read the bids")
        limit = call.param("limit")
        items = await call.services.auctions.bid_log(stream["id"], auction["id"], limit,
                                                     call.param("before") or None)
        # the next page's cursor: None once the log's oldest entry is in this page
        return json_response({"items": items,
                              "before": items[-1]["id"] if len(items) == limit else None})


def _host_or_seller(call: Call[Any], stream: dict[str, Any], auction: dict[str, Any],
                    refusal: str) -> None:
    principal = call.need_principal()
    if not (principal.can_act_for_creator(stream["creator_id"])
            or f"{principal.role.value}:{principal.subject}" == auction["seller"]):
        raise Problem(403, "forbidden", refusal)


async def _auction(call: Call[Any], stream: dict[str, Any]) -> dict[str, Any]:
    auction = await call.services.auctions.get(stream["id"], call.param("auction"))
    if auction is None:
        raise Problem(404, "not-found", "no such auction")
    return auction


def _public(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k not in ("r", "winner")}
