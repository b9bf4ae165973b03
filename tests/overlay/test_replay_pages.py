"""The shoppable replay (issue 13), in real Chromium against a real node: a real aiortc
publisher's show is recorded while the host pins one product, then swaps it for another and
a buyer buys; once the show ended, /r/{stream} plays the recording through hls.js and re-runs
the show's events at each picture's date (the recording's EXT-X-PROGRAM-DATE-TIME). Every
picture the page showed is checked against the log folded to that picture's date, so the
overlay is right on every frame; seeking (the product timeline) re-derives the moment.
Every wait is a multiple of conftest.UNIT; nothing asserts how fast anything is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiortc.mediastreams import AudioStreamTrack
from playwright.async_api import expect

from checkout.ids import StreamId
from checkout.store.keys import stream_events_key
from conftest import UNIT, Live, PageErrors
from loadtest.video_source import CounterTrack
from loadtest.webrtc_peers import publish
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product
from test_pages import shot

MS = 1000 * UNIT  # Playwright timeouts are in milliseconds


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return {"video_ice_hosts": ("127.0.0.1",)}


async def pin(live: Live, stream: str, product: str, *, unpin: bool = False) -> None:
    cleo = live.auth("creator", "cleo")
    r = await (live.http.delete(f"/api/v1/streams/{stream}/pins/{product}", headers=cleo) if unpin
               else live.http.post(f"/api/v1/streams/{stream}/pins", json={"product_id": product},
                                   headers=cleo))
    assert r.status_code == 200, r.text


async def recorded_show(live: Live, watcher: Any = None
                        ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A show with video: pin A, a sale of A, A swapped for B; then its publisher ends it.
    `watcher`, a page, is on the show's viewer page from the swap to the end."""
    await make_brand(live)
    products = [await make_product(live, title=title, sku=f"SKU-{i}", stock=20)
                for i, title in enumerate(("Trail Runner", "Summit Jacket"))]
    a, b = (p["id"] for p in products)
    stream = await make_live_stream(live, [a, b], title="Trail gear drop")
    publisher = await publish(live.http, stream["id"], live.token("creator", "cleo"),
                              CounterTrack(), AudioStreamTrack())
    session = live.services.video.sessions[stream["id"]]
    await eventually(lambda: session.recorder is not None
                     and len(session.recorder.writer.segments) >= 1, "a recorded segment", 30)
    early = await live.http.get(f"/api/v1/streams/{stream['id']}/replay")
    assert early.status_code == 409 and early.json()["type"].endswith("/not-ended"), early.text
    await asyncio.sleep(2 * UNIT)
    await pin(live, stream["id"], a)
    await give_wallet(live, "bob")
    await asyncio.sleep(1 * UNIT)
    sold = await buy(live, "bob", a, stream=stream["id"])
    assert sold.status_code == 201, sold.text
    await asyncio.sleep(4 * UNIT)
    await pin(live, stream["id"], a, unpin=True)
    await pin(live, stream["id"], b)
    if watcher is not None:
        await watcher.goto(f"{live.url}/s/{stream['id']}")
        await expect(watcher.locator("#pinned article.card")).to_have_count(1, timeout=20 * MS)
    await asyncio.sleep(4 * UNIT)
    assert await publisher.stop() == 200  # the publisher leaving ends the show

    async def vod() -> bool:
        playlist = await live.http.get(f"/hls/{stream['id']}/index.m3u8")
        return playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
    await eventually(vod, "the recording ends as a VOD playlist", 30)
    return stream, products


async def pinned_by_date(live: Live, stream: str) -> list[tuple[int, list[str]]]:
    """The show's pinned list after each event, with the event's date, from the log."""
    logged = await live.services.client.xrange(stream_events_key(stream))
    out = []
    for _, fields in logged:
        event = orjson.loads(fields[b"e"])
        if "pinned" in event:
            out.append((event["at_ms"], list(event["pinned"])))
        elif event["type"] == "stream.state" and event["state"] in ("ended", "cancelled"):
            out.append((event["at_ms"], []))  # the reducers clear the pins
    return out


def expected_pinned(changes: list[tuple[int, list[str]]], date: int) -> list[str]:
    pinned: list[str] = []
    for at, now in changes:
        if at <= date:
            pinned = now
    return pinned


async def test_the_replay_reruns_the_show_on_its_recording_and_seeks_by_product(
        live: Live, new_page: Any, page_errors: PageErrors) -> None:
    watcher = await new_page()
    stream, products = await recorded_show(live, watcher)
    a, b = (p["id"] for p in products)
    # A viewer watching when the show ended stays on its page and is offered the replay.
    await expect(watcher.locator("#replay-note")).to_be_visible(timeout=20 * MS)
    await expect(watcher.locator("#replay-link")).to_have_attribute("href", f"/r/{stream['id']}")
    assert watcher.url.endswith(f"/s/{stream['id']}")
    await watcher.close()
    changes = await pinned_by_date(live, stream["id"])
    assert [p for _, p in changes] == [[a], [], [b], []]  # pin, unpin, pin, the end clears
    at_a, at_b = changes[0][0], changes[2][0]

    r = await live.http.get(f"/api/v1/streams/{stream['id']}/replay")
    assert r.status_code == 200, r.text
    replay = r.json()
    assert replay["hls_url"] == f"/hls/{stream['id']}/index.m3u8"
    assert [s["product"] for s in replay["sales"]] == [a] and replay["sales"][0]["buyer"] == "b***"
    assert {a, b} <= set(replay["products"]) and replay["stock"][a] == {"default": 19}

    page = await new_page()
    await page.goto(f"{live.url}/r/{stream['id']}")
    await expect(page.locator("#stream-title")).to_have_text("Trail gear drop")
    await page.wait_for_function("() => window.__livecartReplay.date !== null", timeout=30 * MS)
    items = page.locator(".timeline-item")
    await expect(items).to_have_count(2)
    await expect(items.nth(0)).to_contain_text("Trail Runner")
    await expect(items.nth(1)).to_contain_text("Summit Jacket")

    # The timeline seeks: to B's moment, the card is B; to A's, the card is A (then and now).
    await items.nth(1).locator(".moment-btn").click()
    await page.wait_for_function(f"() => window.__livecartReplay.pinned.join() === {b!r}",
                                 timeout=20 * MS)
    await expect(page.locator("#pinned-cards .card")).to_have_count(1)
    await expect(page.locator("#pinned-cards .card .card-title")).to_have_text("Summit Jacket")
    await items.nth(0).locator(".moment-btn").click()
    await page.wait_for_function(f"() => window.__livecartReplay.pinned.join() === {a!r}",
                                 timeout=20 * MS)
    card = page.locator("#pinned-cards .card")
    await expect(card.locator(".card-title")).to_have_text("Trail Runner")

    # Paused, a seek re-derives the moment: before the sale and after it (then and now).
    sale_at = replay["sales"][0]["at_ms"]
    await page.evaluate("document.getElementById('video').pause()")
    for date, left_then, ticker in ((sale_at + 500, 19, 1), (at_a + 100, 20, 0)):
        await page.evaluate(f"window.__livecartReplay.seekToDate({date})")
        await page.wait_for_function(
            f"() => Math.abs(window.__livecartReplay.date - {date}) < 200", timeout=20 * MS)
        await expect(card.locator(".replay-then")).to_contain_text(f"{left_then} left then, 19 now")
        await expect(page.locator("#ticker .ticker-item")).to_have_count(ticker)
    await expect(page.locator("#replay-clock")).not_to_have_text("")

    # Play across B's moment from a second before it: the overlay turns with the picture.
    await page.evaluate("window.__livecartReplay.frames.length = 0")
    await page.evaluate(f"window.__livecartReplay.seekToDate({at_b - 1000})")
    await page.evaluate("document.getElementById('video').play()")
    assert at_a < sale_at < at_b
    await page.wait_for_function(f"() => window.__livecartReplay.frames.some(([d]) => d >= {at_b})",
                                 timeout=20 * MS)
    frames = await page.evaluate("window.__livecartReplay.frames")
    assert any(d < at_b for d, _ in frames) and any(d >= at_b for d, _ in frames), frames[:3]
    # Every picture shown carried the overlay of its own date: exact to the frame.
    wrong = [(d, p) for d, p in frames if p != ",".join(expected_pinned(changes, d))]
    assert not wrong, wrong[:5]
    assert at_a < at_b
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "replay")

    # Buying from the replay: the timeline's Buy opens the product page for the show's
    # replay; the order is the show's, channel `replay`, at today's price.
    shopper = await new_page()
    await shopper.goto(f"{live.url}/p/{a}#token={live.token('buyer', 'bob')}")
    await shopper.goto(f"{live.url}/r/{stream['id']}")
    await shopper.locator(".timeline-item").nth(0).locator(".timeline-buy").click()
    await shopper.wait_for_url(f"**/p/{a}?replay={stream['id']}")
    await shopper.locator("#buy").click()
    result = shopper.locator("#buy-result")
    await expect(result).to_contain_text("Order confirmed", timeout=20 * MS)
    order_id = (await result.locator(".result-detail").text_content() or "").split()[-1]
    order = (await live.http.get(f"/api/v1/orders/{order_id}",
                                 headers=live.auth("buyer", "bob"))).json()
    assert (order["channel"], order["stream"], order["amount_minor"]) == (
        "replay", stream["id"], products[0]["price_minor"])

    # The show's viewer page, opened after it ended, turns into its replay.
    stream_now = (await live.http.get(f"/api/v1/streams/{stream['id']}")).json()
    assert stream_now["replay_url"] == f"/r/{stream['id']}" and stream_now["recorded"] is True
    late = await new_page()
    await late.goto(f"{live.url}/s/{stream['id']}")
    await late.wait_for_url(f"**/r/{stream['id']}", timeout=20 * MS)
    await expect(late.locator(".timeline-item")).to_have_count(2)
    assert not page_errors, page_errors


def value_at(seen: list[tuple[int, Any]], date: int) -> Any:
    """What the live room showed at `date`: the last value it was sent at or before it."""
    shown = None
    for at, value in seen:
        if at <= date:
            shown = value
    return shown


def between(seen: list[tuple[int, Any]]) -> list[int]:
    """A moment in the middle of each stretch the live room showed one value."""
    return [(x + y) // 2 for (x, _), (y, _) in zip(seen, seen[1:])]


async def test_the_replay_shows_stock_and_the_auction_as_the_live_room_showed_them(
        live: Live, new_page: Any, page_errors: PageErrors) -> None:
    """Stock restocked during the show and after it, and an auction bid on four times: at
    paused moments the replay shows what a live viewer was sent then (the room's own state
    frames, heard in-process with their dates), not today's stock worked backwards."""
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", sku="SKU-0", stock=20)
    jersey = await make_product(live, title="Signed Jersey", sku="LOT-1", stock=1)
    a, c = shoe["id"], jersey["id"]
    stream = await make_live_stream(live, [a, c], title="Trail gear drop")
    stock_seen: list[tuple[int, int]] = []
    bids_seen: list[tuple[int, tuple[int, int, int | None]]] = []

    def heard(seq: int | None, message: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        if seq is None and a in message.get("stock", {}):
            stock_seen.append((now, sum(message["stock"][a].values())))
        auction = message.get("auction") if seq is None else None
        if auction:
            bids_seen.append((now, (auction["bids"], auction["price_minor"], auction["high_paddle"])))
    await live.services.hub.tap(StreamId(stream["id"]), [a, c], heard)
    publisher = await publish(live.http, stream["id"], live.token("creator", "cleo"),
                              CounterTrack(), AudioStreamTrack())
    session = live.services.video.sessions[stream["id"]]
    await eventually(lambda: session.recorder is not None
                     and len(session.recorder.writer.segments) >= 1, "a recorded segment", 30)
    await asyncio.sleep(1 * UNIT)
    await pin(live, stream["id"], a)
    for who in ("bob", "ann"):
        await give_wallet(live, who)
    brand = live.auth("brand", "acme")

    async def restock(units: int) -> None:
        r = await live.http.put(f"/api/v1/products/{a}/variants/default/stock",
                                json={"adjust": units, "reason": "restock"}, headers=brand)
        assert r.status_code == 200, r.text
    await asyncio.sleep(1.5 * UNIT)
    assert (await buy(live, "bob", a, stream=stream["id"])).status_code == 201
    await asyncio.sleep(1.5 * UNIT)
    await restock(5)  # mid-show: the old estimate would be 5 too high before this
    await asyncio.sleep(1.5 * UNIT)
    assert (await buy(live, "bob", a, stream=stream["id"])).status_code == 201
    await asyncio.sleep(1.5 * UNIT)

    r = await live.http.post(f"/api/v1/streams/{stream['id']}/auctions",
                             headers=live.auth("creator", "cleo"),
                             json={"product_id": c, "start_minor": 1000, "duration_s": 10,
                                   "format": "sudden_death"})
    assert r.status_code == 201, r.text
    auction = r.json()["id"]
    for n, (who, max_minor) in enumerate((("ann", 1000), ("bob", 2000), ("ann", 1500),
                                          ("ann", 3000))):
        await asyncio.sleep(1.2 * UNIT)
        bid = await live.http.post(
            f"/api/v1/streams/{stream['id']}/auctions/{auction}/bids", json={"max_minor": max_minor},
            headers={**live.auth("buyer", who), "Idempotency-Key": f"replay-bid-{n}"})
        assert bid.status_code == 201, bid.text

    async def closed() -> bool:
        got = (await live.http.get(f"/api/v1/streams/{stream['id']}/auctions/{auction}")).json()
        return bool(got["state"] == "closed")
    await eventually(closed, "the auction closes", 20)
    await asyncio.sleep(1.5 * UNIT)
    assert await publisher.stop() == 200  # the publisher leaving ends the show

    async def vod() -> bool:
        playlist = await live.http.get(f"/hls/{stream['id']}/index.m3u8")
        return playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
    await eventually(vod, "the recording ends as a VOD playlist", 30)
    await restock(7)  # after the show: today's stock moves, the show's stays as it was

    # The room was sent each change: 20, 19, 24, 23 (read from the frames, not assumed).
    changes = [x for i, x in enumerate(stock_seen) if i == 0 or x[1] != stock_seen[i - 1][1]]
    assert len(changes) >= 4, changes
    bid_changes = [x for i, x in enumerate(bids_seen) if i == 0 or x[1] != bids_seen[i - 1][1]]
    assert [b for _, (b, _, _) in bid_changes] == [1, 2, 3, 4], bid_changes
    answer = await live.http.get(f"/api/v1/streams/{stream['id']}/replay")
    assert '"ann"' not in answer.text and '"bob"' not in answer.text  # paddles, never buyers
    replay = answer.json()
    now_left = sum(replay["stock"][a].values())
    assert now_left == changes[-1][1] + 7
    assert replay["bids"] and all("bidder" not in t["auction"] for t in replay["bids"])

    page = await new_page()
    await page.goto(f"{live.url}/r/{stream['id']}")
    await page.wait_for_function("() => window.__livecartReplay.date !== null", timeout=30 * MS)
    await page.evaluate("document.getElementById('video').pause()")
    pinned_at = (await pinned_by_date(live, stream["id"]))[0][0]

    async def seek(date: int) -> Any:
        await page.evaluate(f"window.__livecartReplay.seekToDate({date})")
        await page.wait_for_function(
            f"() => Math.abs(window.__livecartReplay.date - {date}) < 200", timeout=20 * MS)
        return await page.evaluate("window.__livecartReplay")

    card = page.locator("#pinned-cards .card")
    for date in [*between(changes), changes[-1][0] + 700]:
        if date < pinned_at + 200:
            continue
        shown = await seek(date)
        assert shown["left"][a] == value_at(changes, date), (date, changes, shown["left"])
        await expect(card.locator(".replay-then")).to_contain_text(
            f"{value_at(changes, date)} left then, {now_left} now")

    auction_card = page.locator("#auction-slot .auction-card")
    for date in between(bid_changes):
        shown = await seek(date)
        bids, price, paddle = value_at(bid_changes, date)
        assert (shown["auction"]["bids"], shown["auction"]["price_minor"],
                shown["auction"]["high_paddle"]) == (bids, price, paddle), (date, bid_changes)
        await expect(auction_card.locator(".auction-lead")).to_have_text(
            f"Paddle #{paddle} leads · {bids} bid{'' if bids == 1 else 's'}")
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "replay-auction")
    # The close and its result, as the log has them.
    closed_at = next(e["at_ms"] for e in replay["events"] if e["type"] == "auction.closed")
    shown = await seek(closed_at + 700)
    assert shown["auction"]["status"] == "sold" and shown["auction"]["bids"] == 4
    await expect(auction_card.locator(".auction-status")).to_contain_text(
        f"to Paddle #{bid_changes[-1][1][2]}")
    assert not page_errors, page_errors
