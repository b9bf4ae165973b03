"""Affiliate programs over real HTTP: the commission in force at purchase goes into the order,
approval decides who puts a brand's products in a lineup or a link, the program's deal
floor bounds a creator's deals, and each application moves by the table."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Live
from shop import buy, give_wallet, make_brand, make_product
from test_bad_input import assert_problem

from checkout.programs import OPEN_TRANSITIONS, TRANSITIONS, AppAction, AppState

ACME = "/api/v1/brands/acme/program"


async def start_program(live: Live, bps: int = 1000, mode: str = "approval") -> dict[str, Any]:
    r = await live.http.put(ACME, headers=live.auth("brand", "acme"),
                            json={"default_commission_bps": bps, "mode": mode})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def schedule(live: Live, lineup: list[str], creator: str = "cleo") -> Any:
    return await live.http.post("/api/v1/streams", headers=live.auth("creator", creator),
                                json={"title": "Show", "lineup": lineup})


async def decide(live: Live, creator: str, action: str) -> Any:
    return await live.http.post(f"{ACME}/applications/{creator}/{action}",
                                headers=live.auth("brand", "acme"))


def test_the_application_table() -> None:
    """Pure: the moves people make, and the ones refused."""
    S, A = AppState, AppAction
    assert TRANSITIONS[(S.NONE, A.APPLY)] is S.PENDING
    assert TRANSITIONS[(S.PENDING, A.APPROVE)] is S.APPROVED
    assert TRANSITIONS[(S.APPROVED, A.REMOVE)] is S.REMOVED
    assert TRANSITIONS[(S.REMOVED, A.APPLY)] is S.PENDING
    assert (S.NONE, A.APPROVE) not in TRANSITIONS  # nobody approves a creator who never applied
    assert (S.PENDING, A.REMOVE) not in TRANSITIONS and (S.APPROVED, A.REJECT) not in TRANSITIONS
    assert all(OPEN_TRANSITIONS[(s, A.APPLY)] is S.APPROVED for s in AppState)
    assert not any(a in (A.REJECT, A.REMOVE) for _, a in OPEN_TRANSITIONS)


async def test_the_commission_in_force_at_purchase_is_the_orders(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, commission_bps=500))["id"]
    await start_program(live, bps=1000, mode="open")
    r = await live.http.get(f"/api/v1/products/{product}")
    assert (r.json()["commission_bps"], r.json()["commission_mode"]) == (1000, "open")
    stream = (await schedule(live, [product])).json()["id"]
    assert (await live.http.post(f"/api/v1/streams/{stream}/live",
                                 headers=live.auth("creator", "cleo"))).status_code == 200
    await give_wallet(live, "bob")
    first = (await buy(live, "bob", product, stream=stream)).json()["order"]
    r = await live.http.put(f"{ACME}/products/{product}", headers=live.auth("brand", "acme"),
                            json={"commission_bps": 2500, "deal_floor_minor": None})
    assert r.status_code == 200 and r.json()["commission_bps"] == 2500, r.text
    second = (await buy(live, "bob", product, stream=stream)).json()["order"]
    assert (first["commission_bps"], first["commission_minor"]) == (1000, 500)
    assert (second["commission_bps"], second["commission_minor"]) == (2500, 1250)
    await live.services.aggregator.drain()
    # The breakdown adds up to the ledger's total, per show, brand and product.
    earned = (await live.http.get("/api/v1/creators/cleo/earnings",
                                  headers=live.auth("creator", "cleo"))).json()
    parts = (await live.http.get("/api/v1/creators/cleo/earnings/breakdown",
                                 headers=live.auth("creator", "cleo"))).json()
    assert earned["earned_minor"] == {"USD": 1750}
    for dim, key, value in (("shows", "stream_id", stream), ("brands", "brand_id", "acme"),
                            ("products", "product_id", product)):
        assert parts[dim] == [{key: value, "currency": "USD", "commission_minor": 1750,
                               "sales_minor": 10000, "orders": 2}], dim
    # Back to the default; a new product of the brand follows the program too.
    r = await live.http.put(f"{ACME}/products/{product}", headers=live.auth("brand", "acme"),
                            json={"commission_bps": None, "deal_floor_minor": None})
    assert r.json()["commission_bps"] == 1000
    fresh = await make_product(live, sku="NEW", commission_bps=0)
    assert (fresh["commission_bps"], fresh["commission_mode"]) == (1000, "open")
    # Under a program, its terms are set through it, not by patching the product.
    r = await live.http.patch(f"/api/v1/products/{product}", headers=live.auth("brand", "acme"),
                              json={"commission_bps": 7000})
    assert_problem(r, 409, "program-sets-terms")
    r = await live.http.patch(f"/api/v1/products/{product}", headers=live.auth("brand", "acme"),
                              json={"title": "Renamed"})
    assert r.status_code == 200, r.text


async def test_an_approval_program_decides_who_sells(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live))["id"]
    await start_program(live, mode="approval")
    cleo = live.auth("creator", "cleo")
    # Not approved: no lineup, no link.
    assert_problem(await schedule(live, [product]), 403, "not-approved")
    r = await live.http.post("/api/v1/links", headers=cleo, json={"product_id": product})
    assert_problem(r, 403, "not-approved")
    empty = (await schedule(live, [])).json()["id"]
    r = await live.http.put(f"/api/v1/streams/{empty}/lineup", headers=cleo,
                            json={"lineup": [product]})
    assert_problem(r, 403, "not-approved")
    # Nobody approves a creator who never applied.
    assert_problem(await decide(live, "cleo", "approve"), 409, "illegal-application-move")
    r = await live.http.post(f"{ACME}/applications", headers=cleo,
                             json={"message": "  I sell sneakers  "})
    assert r.status_code == 201 and r.json()["state"] == "pending", r.text
    assert r.json()["message"] == "I sell sneakers"
    assert_problem(await schedule(live, [product]), 403, "not-approved")
    pending = (await live.http.get(f"{ACME}/applications",
                                   headers=live.auth("brand", "acme"))).json()["items"]
    assert [(a["creator_id"], a["state"]) for a in pending] == [("cleo", "pending")]
    r = await decide(live, "cleo", "approve")
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    assert (await decide(live, "cleo", "approve")).json()["state"] == "approved"  # twice: same
    assert (await schedule(live, [product])).status_code == 201
    r = await live.http.put(f"/api/v1/streams/{empty}/lineup", headers=cleo,
                            json={"lineup": [product]})
    assert r.status_code == 200, r.text
    assert (await live.http.post("/api/v1/links", headers=cleo,
                                 json={"product_id": product})).status_code == 201
    mine = (await live.http.get("/api/v1/me/programs", headers=cleo)).json()["items"]
    assert [(a["brand_id"], a["state"], a["may_sell"]) for a in mine] == [("acme", "approved", True)]
    # An approved creator's sales pay the program's commission (the product's invited set).
    stream = (await schedule(live, [product])).json()["id"]
    await live.http.post(f"/api/v1/streams/{stream}/live", headers=cleo)
    await give_wallet(live, "bob")
    order = (await buy(live, "bob", product, stream=stream)).json()["order"]
    assert order["commission_bps"] == 1000
    # Removed: no more lineups, and a sale in the show already scheduled pays nothing.
    assert (await decide(live, "cleo", "remove")).json()["state"] == "removed"
    assert_problem(await schedule(live, [product]), 403, "not-approved")
    order = (await buy(live, "bob", product, stream=stream)).json()["order"]
    assert order["commission_bps"] == 0
    # Rejecting is for applications; an approved creator is removed, not rejected.
    assert_problem(await decide(live, "cleo", "reject"), 409, "illegal-application-move")
    # A creator who applies again waits for the brand again.
    r = await live.http.post(f"{ACME}/applications", headers=cleo, json={})
    assert r.json()["state"] == "pending"
    assert (await decide(live, "cleo", "reject")).json()["state"] == "rejected"


async def test_an_open_program_takes_everyone(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, commission_mode="invited"))["id"]
    await start_program(live, mode="open")
    assert (await schedule(live, [product], creator="dana")).status_code == 201
    r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", "dana"),
                             json={"message": "hi"})
    assert r.status_code == 201 and r.json()["state"] == "approved", r.text
    for action in ("reject", "remove"):
        assert_problem(await decide(live, "dana", action), 409, "program-open")
    programs = (await live.http.get("/api/v1/programs", headers=live.auth("creator", "dana")))
    assert [(p["brand_id"], p["mode"], p["my_state"]) for p in programs.json()["items"]] == [
        ("acme", "open", "approved")]


async def test_the_program_sets_the_deal_floor(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live, price_minor=5000))["id"]
    await start_program(live, mode="open")
    admin = live.auth("brand", "acme")
    r = await live.http.put(f"{ACME}/products/{product}", headers=admin,
                            json={"commission_bps": None, "deal_floor_minor": 4000})
    assert r.status_code == 200 and r.json()["deal_floor_minor"] == 4000, r.text
    stream = (await schedule(live, [product])).json()["id"]
    cleo = live.auth("creator", "cleo")
    await live.http.post(f"/api/v1/streams/{stream}/live", headers=cleo)

    async def deal(price: int) -> Any:
        return await live.http.post(f"/api/v1/streams/{stream}/deals", headers=cleo, json={
            "product_id": product, "price_minor": price, "quantity": 5, "countdown_s": 10,
            "duration_s": 60})

    assert_problem(await deal(3999), 422, "deal-below-floor")
    assert (await deal(4000)).status_code == 201
    # No floor: no deal below the price at all.
    r = await live.http.put(f"{ACME}/products/{product}", headers=admin,
                            json={"commission_bps": None, "deal_floor_minor": None})
    assert r.json()["deal_floor_minor"] is None
    assert_problem(await deal(4500), 422, "deal-below-floor")
    # A floor at or above the price would allow nothing: said so, and nothing changes.
    for floor in (5000, 6000):
        r = await live.http.put(f"{ACME}/products/{product}", headers=admin,
                                json={"commission_bps": None, "deal_floor_minor": floor})
        assert_problem(r, 422, "floor-not-below-price")
    terms = (await live.http.get(f"{ACME}/products", headers=cleo)).json()["items"]
    assert [(t["product_id"], t["deal_floor_minor"]) for t in terms] == [(product, None)]


async def test_program_bounds_and_missing_programs(live: Live) -> None:
    await make_brand(live)
    product = (await make_product(live))["id"]
    admin = live.auth("brand", "acme")
    r = await live.http.get(ACME, headers=admin)
    assert (r.status_code, r.json()["running"], r.json()["mode"]) == (200, False, None)
    r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", "cleo"),
                             json={"message": "x"})
    assert_problem(r, 404, "no-program")
    r = await live.http.put(f"{ACME}/products/{product}", headers=admin,
                            json={"commission_bps": 1000, "deal_floor_minor": None})
    assert_problem(r, 404, "no-program")
    for bps in (99, 8001, 0):  # TikTok's 1-80%
        r = await live.http.put(ACME, headers=admin, json={"default_commission_bps": bps,
                                                           "mode": "open"})
        assert_problem(r, 422, "validation-error")
    await start_program(live, bps=100)
    await start_program(live, bps=8000)
    r = await live.http.put(f"{ACME}/products/{product}", headers=admin,
                            json={"commission_bps": 8001, "deal_floor_minor": None})
    assert_problem(r, 422, "validation-error")
    r = await live.http.put(f"{ACME}/products/{product}", headers=admin, json={})
    assert_problem(r, 422, "validation-error")  # both terms are said, null or not
    r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", "cleo"),
                             json={"message": "x" * 501})
    assert_problem(r, 422, "validation-error")
    await make_brand(live, "bravo")
    bravo_product = (await make_product(live, "bravo", sku="B"))["id"]
    r = await live.http.put(f"{ACME}/products/{bravo_product}", headers=admin,
                            json={"commission_bps": 1000, "deal_floor_minor": None})
    assert_problem(r, 404, "not-found")


@pytest.mark.parametrize("node_settings", [{"program_max_applications": 2}])
async def test_a_program_keeps_at_most_its_cap_of_applications(live: Live) -> None:
    await make_brand(live)
    await start_program(live)
    for creator in ("c1", "c2"):
        r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", creator),
                                 json={})
        assert r.status_code == 201, r.text
    r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", "c3"), json={})
    assert_problem(r, 409, "program-full")
    # Those on record still move.
    r = await live.http.post(f"{ACME}/applications", headers=live.auth("creator", "c1"), json={})
    assert r.status_code == 201, r.text
