"""Discovery over HTTP against the real node: shows live now and coming up, creators, a
creator's profile and storefront; pages with the house's cursors; bad queries refused."""

from __future__ import annotations

import time
from typing import Any

import pytest

from checkout.store.keys import show_keys
from conftest import Live
from shop import make_brand, make_live_stream, make_product, make_stream

IMAGE = "https://img.test/shoe.jpg"
COVER = "https://img.test/cover.jpg"


def now_ms() -> int:
    return int(time.time() * 1000)


async def shows(live: Live, state: str, creator: str | None = None,
                **query: Any) -> dict[str, Any]:
    path = f"/api/v1/creators/{creator}/shows" if creator else "/api/v1/shows"
    r = await live.http.get(path, params={"state": state, **query})
    assert r.status_code == 200, r.text
    return dict(r.json())


def ids(page: dict[str, Any]) -> list[str]:
    return [s["id"] for s in page["items"]]


async def act(live: Live, stream: dict[str, Any], action: str, creator: str = "cleo") -> None:
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/{action}",
                             headers=live.auth("creator", creator))
    assert r.status_code == 200, r.text


async def test_live_and_upcoming_shows_with_viewers_covers_and_countdown_time(live: Live) -> None:
    await make_brand(live)
    shoe = await make_product(live, title="Trail Runner", image_url=IMAGE)
    on_air = await make_live_stream(live, [shoe["id"]], title="On air")
    soon = now_ms() + 3_600_000
    coming = await make_stream(live, [shoe["id"]], title="Tomorrow", scheduled_at_ms=soon,
                               cover_url=COVER)
    await act(live, await make_stream(live, [], title="Called off"), "cancel")
    done = await make_live_stream(live, [shoe["id"]], title="Done")
    await act(live, done, "end")

    page = await shows(live, "live")
    assert ids(page) == [on_air["id"]]
    assert (await live.http.get("/api/v1/shows")).json()["items"] == page["items"]  # the default
    [show] = page["items"]
    assert show == {"id": on_air["id"], "title": "On air", "creator_id": "cleo", "state": "live",
                    "scheduled_ms": on_air["scheduled_ms"], "started_ms": on_air["started_ms"],
                    "viewers": 0, "cover_url": IMAGE}  # no cover: the lineup's first image
    assert page["next_cursor"] is None
    assert abs(page["server_time_ms"] - now_ms()) < 60_000

    page = await shows(live, "upcoming")
    assert ids(page) == [coming["id"]]
    assert page["items"][0]["scheduled_ms"] == soon
    assert page["items"][0]["cover_url"] == COVER
    assert page["items"][0]["started_ms"] is None

    r = await live.http.get("/api/v1/creators/cleo")
    assert r.json() == {"id": "cleo", "shows": {"live": 1, "upcoming": 1, "past": 1},
                        "followers": 0}
    assert ids(await shows(live, "live", "cleo")) == [on_air["id"]]
    assert ids(await shows(live, "upcoming", "cleo")) == [coming["id"]]
    assert ids(await shows(live, "live", "dana")) == []

    # Going live moves a show from one list to the other.
    await act(live, coming, "live")
    assert ids(await shows(live, "upcoming")) == []
    assert ids(await shows(live, "live")) == [coming["id"], on_air["id"]]  # newest first


async def test_pages_follow_the_cursor_soonest_first(live: Live) -> None:
    start = now_ms() + 600_000
    made = [await make_stream(live, [], title=f"Show {i}", scheduled_at_ms=start + i * 1000)
            for i in (3, 1, 4, 0, 2)]
    expected = [s["id"] for s in sorted(made, key=lambda s: s["scheduled_ms"])]
    seen, cursor, pages = [], 0, 0
    while cursor is not None:
        page = await shows(live, "upcoming", limit=2, cursor=cursor)
        assert len(page["items"]) <= 2
        seen += ids(page)
        cursor, pages = page["next_cursor"], pages + 1
    assert seen == expected
    assert pages == 3


async def test_a_show_long_past_its_time_leaves_upcoming(live: Live) -> None:
    grace = live.services.settings.show_late_grace_s * 1000
    late = await make_stream(live, [], title="Late", scheduled_at_ms=now_ms() - grace // 2)
    await make_stream(live, [], title="Abandoned", scheduled_at_ms=now_ms() - 2 * grace)
    assert ids(await shows(live, "upcoming")) == [late["id"]]
    assert (await live.http.get("/api/v1/creators/cleo")).json()["shows"]["upcoming"] == 1


async def test_a_lost_index_follow_up_is_repaired_by_the_reader(live: Live) -> None:
    """A node that crashed between stream.lua and show_index.lua left the show filed as
    upcoming though it is live: it is not listed as upcoming, and listed live after."""
    stream = await make_live_stream(live, [], title="Crashed in between")
    k = show_keys("cleo")
    client = live.services.client
    async with client.pipeline(transaction=True) as pipe:
        pipe.zrem(k.live, stream["id"]).zrem(k.creator_live, stream["id"])
        pipe.zadd(k.upcoming, {stream["id"]: stream["scheduled_ms"]})
        pipe.hset(k.revs, stream["id"], 0)
        await pipe.execute()
    assert ids(await shows(live, "live")) == []
    assert ids(await shows(live, "upcoming")) == []
    assert ids(await shows(live, "live")) == [stream["id"]]
    assert ids(await shows(live, "live", "cleo")) == [stream["id"]]


async def test_an_older_follow_up_never_overwrites_a_newer_one(live: Live) -> None:
    stream = await make_live_stream(live, [], title="Raced")
    await act(live, stream, "end")
    ended = (await live.http.get(f"/api/v1/streams/{stream['id']}")).json()
    # The go-live follow-up arriving last, with its older rev, changes nothing.
    await live.services.streams.shows.record({**ended, "state": "live", "rev": int(ended["rev"]) - 1},
                                             now_ms())
    k = show_keys("cleo")
    client = live.services.client
    assert await client.zscore(k.live, stream["id"]) is None
    assert await client.zscore(k.creator_live, stream["id"]) is None
    assert (await live.http.get("/api/v1/creators/cleo")).json()["shows"]["past"] == 1


async def test_creators_with_shows_most_recently_active_first(live: Live) -> None:
    soon = now_ms() + 3_600_000
    await make_stream(live, [], creator="dana", title="Dana's", scheduled_at_ms=soon)
    on_air = await make_live_stream(live, [], creator="cleo")
    r = await live.http.get("/api/v1/creators")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"id": "cleo", "live_stream_id": on_air["id"], "next_show_ms": None},
        {"id": "dana", "live_stream_id": None, "next_show_ms": soon}]
    r = await live.http.get("/api/v1/creators", params={"limit": 1})
    assert [c["id"] for c in r.json()["items"]] == ["cleo"] and r.json()["next_cursor"] == 1


async def test_storefront_pages_the_creators_links(live: Live) -> None:
    await make_brand(live)
    products = [await make_product(live, sku=f"SKU-{i}", title=f"P{i}") for i in range(3)]
    for product in products:
        r = await live.http.post("/api/v1/links", json={"product_id": product["id"]},
                                 headers=live.auth("creator", "cleo"))
        assert r.status_code == 201, r.text
    r = await live.http.get("/api/v1/creators/cleo/storefront", params={"limit": 2})
    first = r.json()
    assert [i["product"]["title"] for i in first["items"]] == ["P2", "P1"]
    assert first["next_cursor"] == 2
    assert all(i["link"].endswith(f"/l/{i['code']}") for i in first["items"])
    r = await live.http.get("/api/v1/creators/cleo/storefront", params={"cursor": 2, "limit": 2})
    assert [i["product"]["title"] for i in r.json()["items"]] == ["P0"]
    assert r.json()["next_cursor"] is None


@pytest.mark.parametrize("query", [
    {"state": "live", "cursor": "-1"}, {"state": "live", "cursor": "abc"},
    {"state": "live", "cursor": "1.5"}, {"state": "live", "cursor": str(10**9 + 1)},
    {"state": "live", "limit": "0"}, {"state": "live", "limit": "101"},
    {"state": "past"}, {"state": ""}, {"state": "LIVE"},
])
async def test_bad_queries_are_400_problems(live: Live, query: dict[str, str]) -> None:
    for path in ("/api/v1/shows", "/api/v1/creators/cleo/shows"):
        r = await live.http.get(path, params=query)
        assert r.status_code == 400, (path, query, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/bad-query")


@pytest.mark.parametrize("node_settings", [{"page_size_max": 3}])
async def test_the_page_size_is_the_nodes_setting(live: Live, node_settings: Any) -> None:
    for i in range(4):
        await make_stream(live, [], title=f"S{i}", scheduled_at_ms=now_ms() + 60_000 + i)
    assert (await live.http.get("/api/v1/shows", params={"state": "upcoming",
                                                         "limit": 4})).status_code == 400
    page = await shows(live, "upcoming", limit=3)
    assert len(page["items"]) == 3 and page["next_cursor"] == 3
    doc = (await live.http.get("/api/v1/openapi.json")).json()
    [limit] = [p for p in doc["paths"]["/api/v1/shows"]["get"]["parameters"] if p["name"] == "limit"]
    assert limit["schema"]["maximum"] == 3


async def test_the_demo_storefront_has_one_live_show_a_show_tomorrow_and_a_shop(live: Live) -> None:
    from live.node.demo import seed_demo

    first = await seed_demo(live.services)
    second = await seed_demo(live.services)  # `serve --demo` again on the same data
    assert ids(await shows(live, "live")) == [second.stream_id]  # the last run's show ended
    assert [s["title"] for s in (await shows(live, "upcoming"))["items"]] == ["Rain gear night"]
    r = await live.http.get("/api/v1/creators/cleo")
    assert r.json()["shows"] == {"live": 1, "upcoming": 1, "past": 1}
    assert first.stream_id != second.stream_id
    r = await live.http.get("/api/v1/creators/cleo/storefront")
    assert sorted(i["product"]["id"] for i in r.json()["items"]) == sorted(second.product_ids)
