"""The wallet over real HTTP: several addresses and cards per buyer with one default of
each, cards saved from gateway tokens (shown as brand, last four, expiry; the token never
comes back), a token belonging to the first buyer who saves it, the caps, one buyer never
reaching another's entries, and what a buy takes from it (the chosen card, the address
snapshot on the order)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import redis.asyncio as redis

from checkout.errors import Refused
from checkout.ids import BuyerId
from conftest import Live
from shop import buy, db_state, give_wallet, idem, make_brand, make_live_stream, make_product
from test_bad_input import assert_problem, state_diff

NEXT_YEAR = datetime.date.today().year + 1
HOME = {"name": "Ann Lee", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345",
        "country": "US"}
WORK = {"name": "Ann Lee", "line1": "9 Dock Rd", "line2": "Unit 4", "city": "Shelbyville",
        "postal_code": "54321", "country": "US"}


async def tokenize(live: Live, number: str) -> str:
    r = await live.http.post("/sandbox/tokens", json={
        "number": number, "exp_month": 12, "exp_year": NEXT_YEAR, "cvc": "123"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


class Buyer:
    """A buyer's bearer token and shortcuts to its wallet endpoints."""

    def __init__(self, live: Live, name: str) -> None:
        self.live = live
        self.name = name
        self.auth = live.auth("buyer", name)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        return await self.live.http.request(method, f"/api/v1/me/wallet{path}", json=body,
                                            headers=self.auth)

    async def add_address(self, address: dict[str, Any], **extra: Any) -> dict[str, Any]:
        r = await self.call("POST", "/addresses", {**address, **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def add_card(self, token: str, **extra: Any) -> dict[str, Any]:
        r = await self.call("POST", "/cards", {"token": token, **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def listing(self, kind: str) -> dict[str, Any]:
        r = await self.call("GET", f"/{kind}")
        assert r.status_code == 200, r.text
        return dict(r.json())


async def test_addresses_one_default_add_edit_remove(live: Live) -> None:
    ann = Buyer(live, "ann")
    assert await ann.listing("addresses") == {"items": [], "default_id": None}
    home = await ann.add_address(HOME)
    assert home["id"].startswith("ad_") and home["line2"] == ""
    work = await ann.add_address(WORK)
    listing = await ann.listing("addresses")
    assert [a["id"] for a in listing["items"]] == [home["id"], work["id"]]  # oldest first
    assert listing["default_id"] == home["id"]  # the first one is the default
    r = await ann.call("POST", f"/addresses/{work['id']}/default")
    assert r.status_code == 200 and r.json()["default_id"] == work["id"]
    # Edit: the whole address, same id.
    r = await ann.call("PUT", f"/addresses/{home['id']}", {**HOME, "city": "Ogdenville"})
    assert r.status_code == 200 and r.json() == {"id": home["id"], **HOME, "line2": "",
                                                "city": "Ogdenville"}
    # Removing the default promotes the newest left; removing the last leaves none.
    third = await ann.add_address({**HOME, "line1": "3 Elm St"}, default=False)
    assert (await ann.call("DELETE", f"/addresses/{work['id']}")).status_code == 204
    assert (await ann.listing("addresses"))["default_id"] == third["id"]
    for entry in (third, home):
        assert (await ann.call("DELETE", f"/addresses/{entry['id']}")).status_code == 204
    assert await ann.listing("addresses") == {"items": [], "default_id": None}
    # Gone is gone.
    assert_problem(await ann.call("DELETE", f"/addresses/{home['id']}"), 404, "not-found")
    assert_problem(await ann.call("POST", f"/addresses/{home['id']}/default"), 404, "not-found")


async def test_cards_are_saved_from_tokens_and_shown_without_them(live: Live) -> None:
    ann = Buyer(live, "ann")
    visa = await tokenize(live, "4242 4242 4242 4242")
    poor = await tokenize(live, "4000 0000 0000 9995")
    first = await ann.add_card(visa)
    assert first == {"id": first["id"], "brand": "visa", "last4": "4242", "exp_month": 12,
                     "exp_year": NEXT_YEAR}
    second = await ann.add_card(poor, default=True)
    r = await ann.call("GET", "/cards")
    assert r.json()["default_id"] == second["id"]
    assert [c["last4"] for c in r.json()["items"]] == ["4242", "9995"]
    for token in (visa, poor):  # the tokens never come back
        assert token not in r.text
    # Saving a token twice keeps one card.
    again = await ann.add_card(visa)
    assert again["id"] == first["id"]
    assert len((await ann.listing("cards"))["items"]) == 2
    assert (await ann.call("DELETE", f"/cards/{second['id']}")).status_code == 204
    assert (await ann.listing("cards"))["default_id"] == first["id"]


async def test_a_token_is_the_first_savers_and_unknown_ones_are_refused(
        live: Live, rclient: redis.Redis) -> None:
    ann, eve = Buyer(live, "ann"), Buyer(live, "eve")
    token = await tokenize(live, "4242424242424242")
    await ann.add_card(token)
    before = await db_state(rclient)
    # Another buyer who learnt the token cannot pay with it, by either route.
    assert_problem(await eve.call("POST", "/cards", {"token": token}), 409,
                   "payment-token-taken")
    r = await eve.call("PUT", "", {"shipping": HOME, "payment_token": token})
    assert_problem(r, 409, "payment-token-taken")
    # Tokens nobody issued: refused the same way on both routes.
    for unknown in ("tok_sandbox_" + "0" * 24, "tok_nothing", "pm_1234"):
        assert_problem(await eve.call("POST", "/cards", {"token": unknown}), 422,
                       "unknown-payment-token")
    assert state_diff(before, await db_state(rclient)) == []
    # The sandbox's public test tokens are anyone's.
    for buyer in (ann, eve):
        card = await buyer.add_card("tok_visa")
        assert (card["brand"], card["last4"]) == ("visa", "4242")
    assert (await eve.add_card("tok_insufficient_funds"))["last4"] == "9995"


@pytest.mark.parametrize("node_settings", [{"wallet_max_addresses": 2, "wallet_max_cards": 1}])
async def test_the_caps_are_the_settings(live: Live, rclient: redis.Redis) -> None:
    ann = Buyer(live, "ann")
    await ann.add_address(HOME)
    await ann.add_address(WORK)
    await ann.add_card("tok_visa")
    before = await db_state(rclient)
    r = await ann.call("POST", "/addresses", HOME)
    assert_problem(r, 409, "too-many-addresses")
    assert r.json()["max"] == 2
    assert_problem(await ann.call("POST", "/cards", {"token": "tok_decline"}), 409,
                   "too-many-cards")
    assert state_diff(before, await db_state(rclient)) == []
    # The same card again is not a new one: no cap in the way.
    assert (await ann.call("POST", "/cards", {"token": "tok_visa"})).status_code == 201


async def test_one_buyer_never_reaches_anothers_entries(live: Live, rclient: redis.Redis) -> None:
    ann, bob = Buyer(live, "ann"), Buyer(live, "bob")
    home = await ann.add_address(HOME)
    card = await ann.add_card(await tokenize(live, "4242424242424242"))
    await bob.add_address(WORK)
    before = await db_state(rclient)
    for method, path, body in (
            ("PUT", f"/addresses/{home['id']}", WORK),
            ("DELETE", f"/addresses/{home['id']}", None),
            ("POST", f"/addresses/{home['id']}/default", None),
            ("DELETE", f"/cards/{card['id']}", None),
            ("POST", f"/cards/{card['id']}/default", None)):
        r = await bob.call(method, path, body)
        assert_problem(r, 404, "not-found")  # as if it did not exist: 404, never 403
        unknown = await bob.call(method, path.replace(home["id"], "ad_000000000000")
                                 .replace(card["id"], "cd_000000000000"), body)
        assert r.json() == unknown.json()
    assert state_diff(before, await db_state(rclient)) == []
    assert [a["id"] for a in (await bob.listing("addresses"))["items"]] != [home["id"]]
    assert (await bob.listing("cards"))["items"] == []
    # Nor can bob buy with ann's card or ship to her address.
    await make_brand(live)
    product = await make_product(live)
    stream = await make_live_stream(live, [product["id"]])
    await bob.add_card("tok_visa")
    for extra in ({"card_id": card["id"]}, {"address_id": home["id"]}):
        r = await buy(live, "bob", product["id"], stream=stream["id"], **extra)
        assert_problem(r, 404, "not-found")


@pytest.mark.parametrize(("path", "body"), [
    ("/addresses", {**HOME, "country": "usa"}),
    ("/addresses", {**HOME, "name": "   "}),
    ("/addresses", {**HOME, "default": "yes"}),
    ("/addresses", {"name": "x"}),
    ("/cards", {"token": "4242424242424242"}),
    ("/cards", {"token": "tok_visa", "number": "4242424242424242"}),
    ("/cards", {}),
])
async def test_bad_entries_are_422_problems(live: Live, rclient: redis.Redis, path: str,
                                            body: dict[str, Any]) -> None:
    before = await db_state(rclient)
    r = await Buyer(live, "ann").call("POST", path, body)
    assert_problem(r, 422, "validation-error")
    assert "4242424242424242" not in r.text
    assert state_diff(before, await db_state(rclient)) == []


async def test_put_wallet_maps_to_the_defaults(live: Live) -> None:
    ann = Buyer(live, "ann")
    assert_problem(await ann.call("GET", ""), 409, "wallet-missing")
    await give_wallet(live, "ann", token="tok_decline")
    await give_wallet(live, "ann")  # a working card now: it becomes the default
    r = await ann.call("GET", "")
    assert r.status_code == 200, r.text
    wallet = r.json()
    assert wallet["payment_method"] == "visa …4242"
    assert [c["last4"] for c in wallet["cards"]] == ["0002", "4242"]
    assert len(wallet["addresses"]) == 1  # the default address was replaced, not added
    assert wallet["shipping"]["id"] == wallet["default_address_id"]
    assert "tok_" not in r.text


async def test_a_buy_uses_the_chosen_card_and_keeps_the_address_it_shipped_to(
        live: Live) -> None:
    ann = Buyer(live, "ann")
    home = await ann.add_address(HOME)
    work = await ann.add_address(WORK)
    poor = await ann.add_card(await tokenize(live, "4000000000009995"))
    good = await ann.add_card(await tokenize(live, "4242424242424242"))
    await make_brand(live)
    product = await make_product(live, stock=5)
    stream = await make_live_stream(live, [product["id"]])

    r = await buy(live, "ann", product["id"], stream=stream["id"])  # the defaults: 9995
    assert r.status_code == 402 and r.json()["decline_code"] == "insufficient_funds"
    assert r.json()["detail"] == "Your card has insufficient funds."
    r = await buy(live, "ann", product["id"], stream=stream["id"], card_id=good["id"],
                  address_id=work["id"])
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert order["ship_to"] == {k: v for k, v in work.items() if k != "id"}
    assert order["card"] == {"brand": "visa", "last4": "4242"}
    assert order["title"] == "Sneaker"
    # Changing the wallet afterwards leaves the order's snapshot alone.
    r = await ann.call("PUT", f"/addresses/{work['id']}", {**WORK, "line1": "elsewhere"})
    assert r.status_code == 200
    await ann.call("DELETE", f"/cards/{good['id']}")
    r = await live.http.get(f"/api/v1/orders/{order['id']}", headers=ann.auth)
    assert r.json()["ship_to"]["line1"] == "9 Dock Rd" and r.json()["card"]["last4"] == "4242"
    assert "tok_" not in r.text
    # A buy with an address or card not in the wallet: 404, nothing reserved.
    r = await buy(live, "ann", product["id"], stream=stream["id"], card_id=good["id"])
    assert_problem(r, 404, "not-found")
    # One Idempotency-Key is one purchase: retried with another card it is refused, not
    # answered with the first card's order; with the same card it is that order.
    key = idem()
    r = await buy(live, "ann", product["id"], stream=stream["id"], key=key, card_id=poor["id"])
    assert r.status_code == 402, r.text
    r = await buy(live, "ann", product["id"], stream=stream["id"], key=key)
    assert_problem(r, 422, "idempotency-key-reused")
    r = await buy(live, "ann", product["id"], stream=stream["id"], key=key, card_id=poor["id"])
    assert r.status_code == 402 and r.headers["idempotent-replayed"] == "true", r.text
    assert poor["id"] != good["id"] and home["id"] != work["id"]


async def test_the_buys_wallet_read_answers_as_the_whole_wallet_does(live: Live) -> None:
    """`start_payment` (what a buy reads, two entries parsed) gives the same payment or the
    same refusal as parsing the whole wallet and `pay_with`, for every choice of entries."""
    ann = Buyer(live, "ann")
    wallets = live.services.wallets

    async def both(address_id: str | None, card_id: str | None) -> tuple[Any, Any]:
        answers = []
        for read in (lambda: _picked(wallets, address_id, card_id),
                     lambda: _whole(wallets, address_id, card_id)):
            try:
                answers.append(await read())
            except Refused as exc:
                answers.append((exc.status, exc.kind))
        return answers[0], answers[1]

    choices: list[list[str | None]] = [[None, "ad_000000000000"], [None, "cd_000000000000"]]
    fast, whole = await both(None, None)
    assert fast == whole == (409, "wallet-missing")
    home = await ann.add_address(HOME)
    fast, whole = await both(None, None)
    assert fast == whole == (409, "wallet-missing")  # no card yet
    work = await ann.add_address(WORK, default=True)
    await ann.add_card(await tokenize(live, "4000000000009995"))
    good = await ann.add_card(await tokenize(live, "4242424242424242"))
    choices[0] += [home["id"], work["id"]]
    choices[1] += [good["id"]]
    for address_id in choices[0]:
        for card_id in choices[1]:
            fast, whole = await both(address_id, card_id)
            assert fast == whole, (address_id, card_id)


async def _whole(wallets: Any, address_id: str | None, card_id: str | None) -> Any:
    return (await wallets.get(BuyerId("ann"))).pay_with(address_id, card_id)


async def _picked(wallets: Any, address_id: str | None, card_id: str | None) -> Any:
    return (await wallets.start_payment(BuyerId("ann"), address_id, card_id).picked()).payment()
