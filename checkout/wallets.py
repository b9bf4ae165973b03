"""A buyer's wallet: shipping addresses and saved cards, one default of each; what makes
one tap enough.

One hash per buyer (`wallet_key`): `address:<id>` and `card:<id>` hold the entries,
`default_address` and `default_card` the defaults; wallet.lua makes every change atomically
(a cap per kind, the first entry of a kind becomes its default, removing the default
promotes the newest left). A card is saved from a gateway token, never a number: the
gateway says what the token stands for (brand, last four, expiry), and the wallet keeps
that summary beside the token, which never leaves the server. A token belongs to the first
buyer who saves it (`token_owner_key`, SET NX), so a token seen by someone else cannot pay
from their wallet; the gateways' public test tokens (`tok_visa`) are anyone's.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Literal

import orjson
import redis.asyncio as redis
from pydantic import StringConstraints

from checkout.errors import Refused
from checkout.ids import BuyerId
from checkout.models import StrictModel
from checkout.payments import PaymentGateway
from checkout.store.batcher import CommandBatcher, observed
from checkout.store.keys import token_owner_key, wallet_key
from checkout.store.scripts import SCRIPTS, call_script

__all__ = ["Address", "AddressIn", "CardIn", "WalletIn", "Wallet", "WalletStore", "Payment",
           "Picked", "WalletRead", "WalletFull", "EntryId", "Kind", "TOKEN_PATTERN", "public_card"]

# `\S`: the document's way of saying what stripping then min_length=1 refuses (all blanks).
Line = Annotated[str, StringConstraints(min_length=1, max_length=120, strip_whitespace=True,
                                        pattern=r"\S")]
# A gateway token, never a card number: the gateway holds the card. `tok_...`: the
# sandbox's; `pm_...`: a Stripe payment method (POST /api/v1/me/cards).
TOKEN_PATTERN = r"^(tok|pm)_[A-Za-z0-9_]{1,60}$"
Token = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]
# An address's or card's id in its wallet: `ad_` or `cd_` and 12 hex digits.
EntryId = Annotated[str, StringConstraints(pattern=r"^(ad|cd)_[0-9a-f]{12}$")]
Kind = Literal["address", "card"]
_PLURAL: dict[Kind, str] = {"address": "addresses", "card": "cards"}


class Address(StrictModel):
    name: Line
    line1: Line
    line2: Annotated[str, StringConstraints(max_length=120)] = ""
    city: Line
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


# What an order's `ship_to` snapshot keeps of an address (not `AddressIn`'s `default`).
_ADDRESS_FIELDS = tuple(Address.model_fields)


class AddressIn(Address):
    """A new address; `default`: buy with it from now on (a wallet's first one always is)."""

    default: bool = False


class CardIn(StrictModel):
    """A card to save, by its gateway token; `default` as for addresses."""

    token: Token
    default: bool = False


class WalletIn(StrictModel):
    """The one-address, one-card wallet of `PUT /me/wallet`: both become the defaults."""

    shipping: Address
    payment_token: Token


class WalletFull(Refused):
    def __init__(self, kind: Kind, most: int) -> None:
        super().__init__(409, f"too-many-{_PLURAL[kind]}",
                         f"a wallet holds at most {most} {_PLURAL[kind]}; remove one first",
                         max=most)


def _not_found(kind: Kind) -> Refused:
    return Refused(404, "not-found", f"no such {kind} in your wallet")


@dataclass(frozen=True, slots=True)
class Payment:
    """What one purchase pays with (a card's token) and the order's record of it and of
    where it ships (`BuyService.settle` writes `snapshot` with the authorization)."""

    token: str
    snapshot: dict[str, str]


@dataclass(frozen=True, slots=True)
class Wallet:
    """A buyer's wallet as stored: entries oldest first, each a dict with its `id` (a card's
    with its `token`, which `public` leaves out)."""

    addresses: list[dict[str, Any]]
    cards: list[dict[str, Any]]
    default_address: str | None
    default_card: str | None

    def address(self, entry_id: str | None = None) -> dict[str, Any] | None:
        """The address of that id, or the default one."""
        wanted = entry_id or self.default_address
        return next((a for a in self.addresses if a["id"] == wanted), None)

    def card(self, entry_id: str | None = None) -> dict[str, Any] | None:
        wanted = entry_id or self.default_card
        return next((c for c in self.cards if c["id"] == wanted), None)

    def pay_with(self, address_id: str | None = None, card_id: str | None = None) -> Payment:
        """The chosen (or default) address and card. Refused: an id not in this wallet
        (404), or a wallet without an address or a card (409 `wallet-missing`)."""
        return _pay_with(self.address(address_id), self.card(card_id), address_id, card_id)

    def public(self) -> dict[str, Any]:
        return {"addresses": self.addresses, "cards": [public_card(c) for c in self.cards],
                "default_address_id": self.default_address, "default_card_id": self.default_card}


def _pay_with(address: dict[str, Any] | None, card: dict[str, Any] | None,
              address_id: str | None, card_id: str | None) -> Payment:
    """`Wallet.pay_with` for the entries it picked (None: not in the wallet)."""
    _check_picked(address is not None, card is not None, address_id, card_id)
    assert address is not None and card is not None
    return _payment(address, card)


def _check_picked(has_address: bool, has_card: bool, address_id: str | None,
                  card_id: str | None) -> None:
    """The refusals of a pick: an id not in the wallet (404), none to pay with (409)."""
    if address_id is not None and not has_address:
        raise _not_found("address")
    if card_id is not None and not has_card:
        raise _not_found("card")
    if not (has_address and has_card):
        raise Refused(409, "wallet-missing", "save a shipping address and a card first")


def _payment(address: dict[str, Any], card: dict[str, Any]) -> Payment:
    ship_to = {name: address[name] for name in _ADDRESS_FIELDS}
    summary = {"brand": card["brand"], "last4": card["last4"]}
    return Payment(card["token"], {"ship_to": orjson.dumps(ship_to).decode(),
                                   "card": orjson.dumps(summary).decode()})


@dataclass(frozen=True, slots=True)
class Picked:
    """The address and card a buy pays with, found in the wallet but not yet decoded: a buy
    refused before it pays (the sold-out gate) never decodes them."""

    address: bytes | str
    card: bytes | str

    def payment(self) -> Payment:
        return _payment(orjson.loads(self.address), orjson.loads(self.card))


def public_card(card: dict[str, Any]) -> dict[str, Any]:
    """A saved card as its buyer sees it: brand, last four, expiry; never the token."""
    return {k: v for k, v in card.items() if k != "token"}


def _wallet(raw: dict[Any, Any]) -> Wallet:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    entries: dict[str, list[dict[str, Any]]] = {"address": [], "card": []}
    for name, value in fields.items():
        kind, _, entry_id = name.partition(":")
        if entry_id and kind in entries:
            entries[kind].append({"id": entry_id, **orjson.loads(value)})
    for found in entries.values():
        found.sort(key=lambda e: (e["added_ms"], e["id"]))
    return Wallet(entries["address"], entries["card"], fields.get("default_address"),
                  fields.get("default_card"))


async def _wallet_of(sent: Awaitable[dict[Any, Any]]) -> Wallet:
    return _wallet(await sent)


class WalletRead:
    """A buy's wallet read, sent to Valkey (`WalletStore.start_payment`); `picked()` awaits
    it. A buy refused before (its key, the sold-out gate) never does."""

    __slots__ = ("_sent", "_address_id", "_card_id")

    def __init__(self, sent: "asyncio.Future[Any]", address_id: str | None,
                 card_id: str | None) -> None:
        self._sent, self._address_id, self._card_id = sent, address_id, card_id
        sent.add_done_callback(observed)

    async def picked(self) -> Picked:
        """`_wallet(raw).pay_with(...)`'s refusals, finding only the two entries it picks (a
        buy decoded and sorted every entry of the wallet: ~7 % of a flash sale's refusal)."""
        raw = await self._sent
        address = _entry(raw, "address", self._address_id)
        card = _entry(raw, "card", self._card_id)
        _check_picked(address is not None, card is not None, self._address_id, self._card_id)
        assert address is not None and card is not None
        return Picked(address, card)


def _entry(raw: dict[Any, Any], kind: Kind, entry_id: str | None) -> bytes | str | None:
    """The stored entry `entry_id` (or the default) of that kind in a raw wallet hash, still
    encoded; None when there is none."""
    wanted = entry_id or _field(raw, f"default_{kind}")
    return _stored(raw, f"{kind}:{wanted}") if wanted else None


def _field(raw: dict[Any, Any], name: str) -> str | None:
    value = _stored(raw, name)
    return None if value is None else _text(value)


def _stored(raw: dict[Any, Any], name: str) -> bytes | str | None:
    """A raw hash's field as stored: bytes, or str from a decoding client."""
    value: bytes | str | None = raw.get(name.encode(), raw.get(name))
    return value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WalletStore:
    def __init__(self, client: redis.Redis, batcher: CommandBatcher, gateway: PaymentGateway,
                 *, max_addresses: int = 10, max_cards: int = 10) -> None:
        self._client = client
        self._batcher = batcher  # reads on the buy path ride the batched pipeline
        self._gateway = gateway
        self._most: dict[Kind, int] = {"address": max_addresses, "card": max_cards}

    async def get(self, buyer: BuyerId) -> Wallet:
        return await self.start_get(buyer)

    def start_get(self, buyer: BuyerId) -> Awaitable[Wallet]:
        """`get`, sent now: what the caller sends before awaiting it (a buy's binding of its
        key, in the same slot) rides the same pipeline, with no task for either."""
        return _wallet_of(self._batcher.submit("HGETALL", wallet_key(buyer)))

    def start_payment(self, buyer: BuyerId, address_id: str | None = None,
                      card_id: str | None = None) -> WalletRead:
        """`(await start_get(buyer)).pay_with(address_id, card_id)`, sent now: the same
        refusals from `await .picked()` and the same payment from its `.payment()`, finding
        only the entries it pays with (the buy's path)."""
        return WalletRead(self._batcher.submit("HGETALL", wallet_key(buyer)), address_id, card_id)

    async def add_address(self, buyer: BuyerId, address: Address, *,
                          default: bool = False) -> dict[str, Any]:
        entry_id = "ad_" + secrets.token_hex(6)
        fields = address.model_dump(exclude={"default"})
        await self._change(buyer, "add", "address", entry_id, fields, default=default)
        return {"id": entry_id, **fields}

    async def replace_address(self, buyer: BuyerId, entry_id: str,
                              address: Address) -> dict[str, Any]:
        fields = address.model_dump()
        await self._change(buyer, "replace", "address", entry_id, fields)
        return {"id": entry_id, **fields}

    async def add_card(self, buyer: BuyerId, token: str, *, default: bool = False
                       ) -> dict[str, Any]:
        """Save the card a gateway token stands for. Refused (nothing written): a token the
        gateway never issued, or one another buyer saved first."""
        card = await self._gateway.describe_card(buyer, token)
        if card is None:
            raise Refused(422, "unknown-payment-token",
                          "this payment token was never issued to you; tokenize the card again")
        if not card.shared:
            digest = hashlib.sha256(token.encode()).hexdigest()
            owner = await self._client.set(token_owner_key(digest), buyer, nx=True, get=True)
            if owner is not None and _text(owner) != buyer:
                raise Refused(409, "payment-token-taken",
                              "another account saved this card; tokenize it again")
        fields = {"token": token, "brand": card.brand, "last4": card.last4,
                  "exp_month": card.exp_month, "exp_year": card.exp_year}
        entry_id = await self._change(buyer, "add", "card", "cd_" + secrets.token_hex(6),
                                      fields, default=default, token=token)
        return public_card({"id": entry_id, **fields})

    async def remove(self, buyer: BuyerId, kind: Kind, entry_id: str) -> None:
        await self._change(buyer, "remove", kind, entry_id)

    async def make_default(self, buyer: BuyerId, kind: Kind, entry_id: str) -> None:
        await self._change(buyer, "default", kind, entry_id)

    async def put(self, buyer: BuyerId, wallet: WalletIn) -> Wallet:
        """`PUT /me/wallet`: the card (saved, or found by its token) and the address become
        the defaults; the default address, if there is one, is replaced."""
        await self.add_card(buyer, wallet.payment_token, default=True)
        current = (await self.get(buyer)).default_address
        try:
            if current is not None:
                await self.replace_address(buyer, current, wallet.shipping)
                return await self.get(buyer)
        except Refused:  # removed meanwhile
            pass
        await self.add_address(buyer, wallet.shipping, default=True)
        return await self.get(buyer)

    async def _change(self, buyer: BuyerId, op: str, kind: Kind, entry_id: str,
                      fields: dict[str, Any] | None = None, *, default: bool = False,
                      token: str = "") -> str:
        reply = orjson.loads(await call_script(
            self._client, SCRIPTS["wallet"], [wallet_key(buyer)],
            [op, kind, entry_id, orjson.dumps(fields or {}), self._most[kind],
             "1" if default else "", token]))
        match reply["r"]:
            case "ok" | "exists":
                return str(reply["id"])
            case "full":
                raise WalletFull(kind, reply["max"])
            case _:
                raise _not_found(kind)
