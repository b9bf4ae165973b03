"""Comment-to-buy over real sockets (docs/chat.md, "Comment-to-buy"): a real node, real
`websockets` clients, the one-tap buy's own rules and keys, and the host's claims list."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from conftest import UNIT, Live
from shop import buy, give_wallet, make_brand, make_live_stream, make_product, make_stream, stock_of
from test_chat import chat_api, joined, say
from test_hub import recv_until, room_url

FAST = pytest.mark.parametrize("node_settings", [{"chat_min_gap_ms": 1,
                                                  "ws_message_rate": 1000.0}])


async def claim(ws: ClientConnection, text: str, ref: str = "c") -> dict[str, Any]:
    """Send a comment; the notice answering it (fails on an error or a bare ack)."""
    answer = await say(ws, text, ref)
    assert answer.get("type") == "notice", answer
    return answer


async def no_claim(ws: ClientConnection, text: str, ref: str = "n") -> None:
    """The comment is posted and acknowledged with no notice before its ack."""
    await ws.send(orjson.dumps({"type": "chat", "text": text, "ref": ref}).decode())
    async with asyncio.timeout(5 * UNIT):
        while True:
            message = orjson.loads(await ws.recv())
            assert not (message["type"] in ("notice", "error") and message.get("ref") == ref), \
                message
            if message["type"] == "ack" and message["ref"] == ref:
                return


async def burst(ws: ClientConnection, text: str, name: str, count: int) -> list[dict[str, Any]]:
    """Send the same comment `count` times without waiting; the notice or error answering
    each (one reader per socket)."""
    refs = {f"{name}{i}" for i in range(count)}
    for ref in sorted(refs):
        await ws.send(orjson.dumps({"type": "chat", "text": text, "ref": ref}).decode())
    answers: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(10 * UNIT):
        while len(answers) < count:
            message = orjson.loads(await ws.recv())
            if message["type"] in ("notice", "error") and message.get("ref") in refs:
                answers[message["ref"]] = message
    return list(answers.values())


async def settings(live: Live, stream_id: str, **body: Any) -> None:
    r = await live.http.patch(chat_api(live, stream_id, "/settings"), json=body,
                              headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text


async def claims_of(live: Live, stream_id: str) -> list[dict[str, Any]]:
    r = await live.http.get(chat_api(live, stream_id, "/claims"),
                            headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def cart_of(live: Live, buyer: str) -> list[dict[str, Any]]:
    r = await live.http.get("/api/v1/cart", headers=live.auth("buyer", buyer))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def show(live: Live, stock: int = 5, **fields: Any) -> tuple[dict[str, Any], list[str]]:
    await make_brand(live)
    sneaker = await make_product(live, sku="SKU-1", stock=stock)
    tee = await make_product(live, sku="SKU-2", title="Tee", variants=[
        {"id": "tee-s", "name": "S", "stock": 2}, {"id": "tee-m", "name": "M", "stock": 2}])
    stream = await make_live_stream(live, [sneaker["id"], tee["id"]], **fields)
    return stream, [sneaker["id"], tee["id"]]


def total(levels: dict[str, int]) -> int:
    return levels["available"] + levels["held"] + levels["sold"]


async def test_codes_follow_the_order_products_join_the_lineup_and_are_never_reused(
        live: Live) -> None:
    await make_brand(live)
    a, b, c = [(await make_product(live, sku=f"SKU-{i}"))["id"] for i in range(3)]
    stream = await make_stream(live, [a, b])
    assert stream["codes"] == {a: 1, b: 2} and "next_code" not in stream
    host = live.auth("creator", "cleo")
    async with connect(room_url(live, stream["id"])) as ws:
        snap = await recv_until(ws, "snapshot")
        assert snap["stream"]["codes"] == {a: 1, b: 2}
        r = await live.http.put(f"/api/v1/streams/{stream['id']}/lineup", headers=host,
                                json={"lineup": [b, c]})
        assert r.status_code == 200, r.text
        changed = await recv_until(ws, "lineup.changed")
        assert changed["codes"] == {a: 1, b: 2, c: 3}
        r = await live.http.put(f"/api/v1/streams/{stream['id']}/lineup", headers=host,
                                json={"lineup": [c, a]})
        assert (await recv_until(ws, "lineup.changed"))["codes"] == {a: 1, b: 2, c: 3}
    got = (await live.http.get(f"/api/v1/streams/{stream['id']}")).json()
    assert got["codes"] == {a: 1, b: 2, c: 3} and got["lineup"] == [c, a]


@FAST
async def test_a_comment_claims_into_the_cart_on_a_hold_and_the_host_lists_it(live: Live) -> None:
    stream, (sneaker, tee) = await show(live)
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    anon = await joined(live, stream["id"])
    notice = await claim(alice, "sold 1 2")
    assert notice["code"] == "claim.claimed", notice
    data = notice["data"]
    assert (data["product"], data["code"], data["variant"], data["qty"]) == (sneaker, 1,
                                                                              "default", 2)
    assert data["held"] is True and data["expires_ms"] > 0 and data["order"]
    [item] = await cart_of(live, "alice")
    assert (item["id"], item["order_id"], item["quantity"], item["held"]) == (
        data["item"], data["order"], 2, True)
    levels = (await stock_of(live, sneaker))["default"]
    assert (levels["available"], levels["held"]) == (3, 2)
    # The comment is posted like any other: the room reads it.
    async with asyncio.timeout(5 * UNIT):
        while "sold 1 2" not in [m["text"] for m in (await recv_until(anon, "chat"))["messages"]]:
            pass
    size = await claim(alice, "SOLD #2 m", ref="tee")
    assert size["code"] == "claim.claimed" and size["data"]["variant"] == "tee-m"
    unsized = await claim(alice, "SOLD 2", ref="unsized")
    assert unsized["code"] == "claim.unknown-size" and unsized["data"]["sizes"] == ["S", "M"]
    unknown = await claim(alice, "SOLD 9", ref="nine")
    assert unknown["code"] == "claim.unknown-code"
    listed = await claims_of(live, stream["id"])
    assert [(c["outcome"], c["code"]) for c in listed] == [
        ("claim.unknown-code", 9), ("claim.unknown-size", 2), ("claim.claimed", 2),
        ("claim.claimed", 1)]
    assert listed[-1]["user"] == "buyer:alice" and listed[-1]["item"] == data["item"]
    assert [c["at_ms"] for c in listed] == sorted((c["at_ms"] for c in listed), reverse=True)
    r = await live.http.get(chat_api(live, stream["id"], "/claims"),
                            headers=live.auth("buyer", "alice"))
    assert r.status_code == 403
    for ws in (alice, anon):
        await ws.close()


@FAST
async def test_the_same_comment_from_two_sockets_and_a_racing_buy_claim_the_last_unit_once(
        live: Live) -> None:
    stream, (sneaker, _) = await show(live, stock=1)
    await give_wallet(live, "alice")
    token = live.token("buyer", "alice")
    one, two = await joined(live, stream["id"], token), await joined(live, stream["id"], token)

    answers, bought = await asyncio.gather(
        asyncio.gather(burst(one, "SOLD 1", "one", 10), burst(two, "SOLD 1", "two", 10)),
        buy(live, "alice", sneaker, stream=stream["id"]))
    answers = [*answers[0], *answers[1]]
    notices = [a for a in answers if a.get("type") == "notice"]
    # Each comment is the claim (claimed, or sold out to the buy), refused by the chat's
    # rate, or the first posted: never a second hold.
    assert all(a.get("type") in ("notice", "error") for a in answers), answers
    assert {a["code"] for a in answers if a.get("type") == "error"} <= {"too-fast"}
    levels = (await stock_of(live, sneaker))["default"]
    assert total(levels) == 1 and levels["available"] == 0
    held = [i for i in await cart_of(live, "alice") if i["held"]]
    if bought.status_code == 201:
        assert held == [] and levels["sold"] == 1
        assert {n["code"] for n in notices} <= {"claim.sold-out"}
    else:
        assert bought.status_code == 409 and bought.json()["type"].endswith("sold-out")
        assert len(held) == 1 and levels["held"] == 1
        assert {n["code"] for n in notices} == {"claim.claimed"}
        assert {n["data"]["item"] for n in notices} == {held[0]["id"]}
    claimed = [c for c in await claims_of(live, stream["id"]) if c["outcome"] == "claim.claimed"]
    assert len(claimed) == len(held)
    # Once more, the same words: not posted twice, the same claim answered again.
    again = await say(one, "SOLD 1", ref="again")
    assert again["type"] == "notice", again
    assert again["code"] == ("claim.claimed" if held else "claim.sold-out")
    assert len([c for c in await claims_of(live, stream["id"])
                if c["outcome"] == "claim.claimed"]) == len(held)
    for ws in (one, two):
        await ws.close()


@FAST
async def test_sold_out_no_wallet_and_a_non_buyer(live: Live) -> None:
    stream, (sneaker, tee) = await show(live, stock=1)
    bob = await joined(live, stream["id"], live.token("buyer", "bob"))
    await give_wallet(live, "x")
    assert (await buy(live, "x", sneaker, stream=stream["id"])).status_code == 201
    sold_out = await claim(bob, "SOLD 1")
    assert sold_out["code"] == "claim.sold-out"
    assert sold_out["data"]["waitlist"] == f"/api/v1/products/{sneaker}/waitlist"
    await settings(live, stream["id"], claim_mode="buy", keyword="mine")
    await recv_until(bob, "chat.settings")  # the room reads comments by the new keyword
    no_wallet = await claim(bob, "MINE 2 s", ref="w")
    assert no_wallet["code"] == "claim.no-wallet"
    assert await no_claim(bob, "SOLD 2 s") is None  # the old keyword claims nothing now
    acme = await joined(live, stream["id"], live.token("brand", "acme"))
    await no_claim(acme, "MINE 2 s")
    assert (await stock_of(live, tee))["tee-s"]["available"] == 2
    for ws in (bob, acme):
        await ws.close()


@FAST
async def test_claim_mode_buy_pays_with_the_saved_card(live: Live) -> None:
    stream, (sneaker, _) = await show(live)
    await settings(live, stream["id"], claim_mode="buy")
    await give_wallet(live, "carol")
    carol = await joined(live, stream["id"], live.token("buyer", "carol"))
    notice = await claim(carol, "sold 1")
    assert notice["code"] == "claim.claimed" and notice["data"]["payment"] == "settled"
    r = await live.http.get(f"/api/v1/orders/{notice['data']['order']}",
                            headers=live.auth("buyer", "carol"))
    assert r.status_code == 200 and r.json()["state"] in ("paid", "authorized")
    assert (await stock_of(live, sneaker))["default"]["sold"] == 1
    assert await cart_of(live, "carol") == []
    await carol.close()


@FAST
async def test_a_claim_refused_as_sold_out_can_claim_again_once_stock_is_back(live: Live) -> None:
    stream, (sneaker, _) = await show(live, stock=1, purchase_mode="cart_hold")
    dave = await joined(live, stream["id"], live.token("buyer", "dave"))
    erin = await joined(live, stream["id"], live.token("buyer", "erin"))
    held = await claim(dave, "SOLD 1")
    assert held["code"] == "claim.claimed"
    assert (await claim(erin, "SOLD 1"))["code"] == "claim.sold-out"
    r = await live.http.delete(f"/api/v1/cart/items/{held['data']['item']}",
                               headers=live.auth("buyer", "dave"))
    assert r.status_code == 204
    # The same words again (a duplicate, not posted): a new attempt, not the stored refusal.
    again = await claim(erin, "SOLD 1", ref="again")
    assert again["code"] == "claim.claimed", again
    # And dave's claim is over (its hold cancelled): his same comment claims anew, sold out.
    assert (await claim(dave, "SOLD 1", ref="dave"))["code"] == "claim.sold-out"
    levels = (await stock_of(live, sneaker))["default"]
    assert (levels["held"], levels["available"], total(levels)) == (1, 0, 1)
    for ws in (dave, erin):
        await ws.close()


@FAST
async def test_a_burst_of_the_same_comment_holds_one_unit_when_more_are_left(live: Live) -> None:
    stream, (sneaker, _) = await show(live, stock=5)
    token = live.token("buyer", "frank")
    one, two = await joined(live, stream["id"], token), await joined(live, stream["id"], token)
    first, second = await asyncio.gather(burst(one, "sold 1", "a", 10),
                                         burst(two, "sold 1", "b", 10))
    answers = [*first, *second]
    claimed = {a["data"]["item"] for a in answers if a.get("code") == "claim.claimed"}
    assert len(claimed) == 1, answers
    levels = (await stock_of(live, sneaker))["default"]
    assert (levels["held"], levels["available"], total(levels)) == (1, 4, 5)
    assert len(await cart_of(live, "frank")) == 1
    assert [c["outcome"] for c in await claims_of(live, stream["id"])] == ["claim.claimed"]
    for ws in (one, two):
        await ws.close()


async def order_state(live: Live, buyer: str, order: str) -> str:
    r = await live.http.get(f"/api/v1/orders/{order}", headers=live.auth("buyer", buyer))
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


@FAST
@pytest.mark.parametrize("mode", ["cart", "buy"])
async def test_the_same_comment_in_a_later_show_of_the_same_product_claims_anew(
        live: Live, mode: str) -> None:
    stream, (sneaker, _) = await show(live)
    await give_wallet(live, "gina")
    token = live.token("buyer", "gina")
    host = live.auth("creator", "cleo")
    claimed = []
    for later in (False, True):
        if later:  # the next show, in the idempotency keys' lifetime, sells the same product
            r = await live.http.post(f"/api/v1/streams/{stream['id']}/end", headers=host)
            assert r.status_code == 200, r.text
            stream = await make_live_stream(live, [sneaker])
        await settings(live, stream["id"], claim_mode=mode)
        gina = await joined(live, stream["id"], token)
        notice = await claim(gina, "SOLD 1")
        assert notice["code"] == "claim.claimed", notice
        assert notice["data"]["code"] == 1 and notice["data"]["mode"] == mode
        claimed.append(notice["data"])
        await gina.close()
    first, second = claimed
    assert first["order"] != second["order"]
    levels = (await stock_of(live, sneaker))["default"]
    assert total(levels) == 5
    if mode == "buy":
        assert [await order_state(live, "gina", c["order"]) for c in claimed] == ["paid"] * 2
        assert (levels["sold"], levels["held"], levels["available"]) == (2, 0, 3)
    else:
        assert first["item"] != second["item"]
        assert second["item"] in [i["id"] for i in await cart_of(live, "gina")]
        states = [await order_state(live, "gina", c["order"]) for c in claimed]
        assert states[1] == "reserved"
        assert (levels["sold"], levels["held"]) == (0, states.count("reserved"))


@FAST
async def test_a_first_paid_claim_is_over_once_its_item_leaves_the_cart(live: Live) -> None:
    stream, (sneaker, _) = await show(live, purchase_mode="first_paid")
    await give_wallet(live, "hal")
    hal = await joined(live, stream["id"], live.token("buyer", "hal"))
    first = await claim(hal, "SOLD 1")
    assert first["code"] == "claim.claimed" and first["data"]["held"] is False
    assert first["data"]["order"] is None
    # The same words while the item is in the cart: the same claim.
    assert (await claim(hal, "SOLD 1", ref="same"))["data"]["item"] == first["data"]["item"]
    r = await live.http.delete(f"/api/v1/cart/items/{first['data']['item']}",
                               headers=live.auth("buyer", "hal"))
    assert r.status_code == 204
    # Removed from the cart: the same comment claims anew, a new item.
    second = await claim(hal, "SOLD 1", ref="again")
    assert second["code"] == "claim.claimed", second
    assert second["data"]["item"] != first["data"]["item"]
    assert [i["id"] for i in await cart_of(live, "hal")] == [second["data"]["item"]]
    # Checked out (bought): over too, the next such comment is a new claim.
    r = await live.http.post("/api/v1/cart/checkout", headers=live.auth("buyer", "hal"))
    assert r.status_code == 200 and [i["result"] for i in r.json()["items"]] == ["settled"], r.text
    third = await claim(hal, "SOLD 1", ref="third")
    assert third["code"] == "claim.claimed", third
    assert third["data"]["item"] not in (first["data"]["item"], second["data"]["item"])
    assert [i["id"] for i in await cart_of(live, "hal")] == [third["data"]["item"]]
    levels = (await stock_of(live, sneaker))["default"]
    assert (levels["sold"], levels["held"], levels["available"]) == (1, 0, 4)
    assert [c["outcome"] for c in await claims_of(live, stream["id"])] == ["claim.claimed"] * 3
    await hal.close()


@FAST
async def test_a_held_claim_once_paid_stands_and_the_same_comment_buys_nothing_more(
        live: Live) -> None:
    stream, (sneaker, _) = await show(live)  # claim_mode cart: a hold in the cart
    await give_wallet(live, "ivy")
    ivy = await joined(live, stream["id"], live.token("buyer", "ivy"))
    first = await claim(ivy, "SOLD 1")
    assert first["code"] == "claim.claimed" and first["data"]["held"] is True
    r = await live.http.post("/api/v1/cart/checkout", headers=live.auth("buyer", "ivy"))
    assert r.status_code == 200 and [i["result"] for i in r.json()["items"]] == ["settled"], r.text
    again = await claim(ivy, "SOLD 1", ref="again")
    assert again["code"] == "claim.claimed"
    assert again["data"]["order"] == first["data"]["order"]  # the paid claim, answered again
    assert await cart_of(live, "ivy") == []
    levels = (await stock_of(live, sneaker))["default"]
    assert (levels["sold"], levels["held"], levels["available"]) == (1, 0, 4)
    await ivy.close()
