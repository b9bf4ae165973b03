"""The buyer's wallet over HTTP: shipping addresses and saved cards (checkout/wallets.py).

- `GET /me/wallet`, `PUT /me/wallet`: the wallet as one address and one payment method
  (its defaults); PUT saves both and makes them the defaults.
- `GET|POST /me/wallet/addresses`, `PUT|DELETE /me/wallet/addresses/{address}`,
  `POST /me/wallet/addresses/{address}/default`.
- `GET|POST /me/wallet/cards` (a card from a gateway token: the sandbox's `tok_sandbox_...`
  from the page's card form, or Stripe's `pm_...` from `POST /me/cards`),
  `DELETE /me/wallet/cards/{card}`, `POST /me/wallet/cards/{card}/default`.

Each buyer reaches only their own wallet: an id not in it is 404, whoever's it is. A card
is shown as brand, last four and expiry; its token never leaves the server.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from pydantic import StringConstraints
from starlette.responses import Response

from checkout.ids import BuyerId
from checkout.payments import InvalidPaymentRequest, PaymentError
from checkout.wallets import Address, AddressIn, CardIn, Kind, Wallet, WalletIn, public_card
from live.accounts.auth import Role
from live.web.api import Api, Call, Param, json_response
from live.web.problems import Problem

__all__ = ["register"]

ADDRESS = Param("address", "path", Annotated[str, StringConstraints(pattern=r"^ad_[0-9a-f]{12}$")])
CARD = Param("card", "path", Annotated[str, StringConstraints(pattern=r"^cd_[0-9a-f]{12}$")])
T = TypeVar("T")


def _buyer(call: Call[Any]) -> BuyerId:
    return BuyerId(call.need_principal().subject)


def _listing(wallet: Wallet, kind: Kind) -> dict[str, Any]:
    if kind == "address":
        return {"items": wallet.addresses, "default_id": wallet.default_address}
    return {"items": [public_card(c) for c in wallet.cards], "default_id": wallet.default_card}


def _one_of_each(wallet: Wallet) -> dict[str, Any]:
    """The default address and card (the wallet of `PUT /me/wallet`), and the rest."""
    address, card = wallet.address(), wallet.card()
    if address is None or card is None:
        raise Problem(409, "wallet-missing", "save a shipping address and a card first")
    return {"shipping": address, "payment_method": f"{card['brand']} …{card['last4']}",
            **wallet.public()}


async def _asking_gateway(saving: Awaitable[T]) -> T:
    """Saving a card asks the gateway what its token stands for: its failures as problems."""
    try:
        return await saving
    except InvalidPaymentRequest:  # the gateway does not know it (Stripe said so)
        raise Problem(422, "unknown-payment-token", "this payment token was never issued "
                      "to you; tokenize the card again") from None
    except PaymentError:
        raise Problem(503, "payment-gateway-unavailable", "the payment gateway did not "
                      "answer; try again", headers={"Retry-After": "1"}) from None


def register(api: Api) -> None:
    buyer = (Role.BUYER,)

    @api.endpoint("PUT", "/me/wallet", summary="Save a shipping address and a card, as the defaults",
                  tag="wallet", body=WalletIn, roles=buyer)
    async def put_wallet(call: Call[WalletIn]) -> Response:
        wallet = await _asking_gateway(call.services.wallets.put(_buyer(call), call.body))
        return json_response(_one_of_each(wallet))

    @api.endpoint("GET", "/me/wallet", summary="The wallet: its default address and card, and all",
                  tag="wallet", roles=buyer)
    async def get_wallet(call: Call[Any]) -> Response:
        return json_response(_one_of_each(await call.services.wallets.get(_buyer(call))))

    @api.endpoint("GET", "/me/wallet/addresses", summary="The saved shipping addresses",
                  tag="wallet", roles=buyer)
    async def list_addresses(call: Call[Any]) -> Response:
        return json_response(_listing(await call.services.wallets.get(_buyer(call)), "address"))

    @api.endpoint("POST", "/me/wallet/addresses", summary="Add a shipping address", tag="wallet",
                  body=AddressIn, roles=buyer, status=201)
    async def add_address(call: Call[AddressIn]) -> Response:
        entry = await call.services.wallets.add_address(_buyer(call), call.body,
                                                        default=call.body.default)
        return json_response(entry, 201)

    @api.endpoint("PUT", "/me/wallet/addresses/{address}", summary="Change a shipping address",
                  tag="wallet", body=Address, roles=buyer, params=(ADDRESS,))
    async def edit_address(call: Call[Address]) -> Response:
        entry = await call.services.wallets.replace_address(_buyer(call), call.param("address"),
                                                            call.body)
        return json_response(entry)

    @api.endpoint("DELETE", "/me/wallet/addresses/{address}", summary="Remove a shipping address",
                  tag="wallet", roles=buyer, status=204, params=(ADDRESS,))
    async def remove_address(call: Call[Any]) -> Response:
        await call.services.wallets.remove(_buyer(call), "address", call.param("address"))
        return Response(status_code=204)

    @api.endpoint("POST", "/me/wallet/addresses/{address}/default",
                  summary="Ship to this address by default", tag="wallet", roles=buyer,
                  params=(ADDRESS,))
    async def default_address(call: Call[Any]) -> Response:
        buyer_id = _buyer(call)
        await call.services.wallets.make_default(buyer_id, "address", call.param("address"))
        return json_response(_listing(await call.services.wallets.get(buyer_id), "address"))

    @api.endpoint("GET", "/me/wallet/cards", summary="The saved cards (brand, last four, expiry)",
                  tag="wallet", roles=buyer)
    async def list_cards(call: Call[Any]) -> Response:
        return json_response(_listing(await call.services.wallets.get(_buyer(call)), "card"))

    @api.endpoint("POST", "/me/wallet/cards", summary="Save a card from its gateway token",
                  tag="wallet", body=CardIn, roles=buyer, status=201)
    async def add_card(call: Call[CardIn]) -> Response:
        body = call.body
        card = await _asking_gateway(call.services.wallets.add_card(_buyer(call), body.token,
                                                                    default=body.default))
        return json_response(card, 201)

    @api.endpoint("DELETE", "/me/wallet/cards/{card}", summary="Remove a saved card", tag="wallet",
                  roles=buyer, status=204, params=(CARD,))
    async def remove_card(call: Call[Any]) -> Response:
        await call.services.wallets.remove(_buyer(call), "card", call.param("card"))
        return Response(status_code=204)

    @api.endpoint("POST", "/me/wallet/cards/{card}/default", summary="Pay with this card by default",
                  tag="wallet", roles=buyer, params=(CARD,))
    async def default_card(call: Call[Any]) -> Response:
        buyer_id = _buyer(call)
        await call.services.wallets.make_default(buyer_id, "card", call.param("card"))
        return json_response(_listing(await call.services.wallets.get(buyer_id), "card"))
