"""Chat over real sockets (docs/chat.md): a real node (uvicorn, the websockets hub, the
session Valkey), real `websockets` clients, and the HTTP API for moderation."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import msgpack
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from conftest import UNIT, Live, make_settings, start_hub, start_node, stop_node
from shop import buy, give_wallet, make_brand, make_live_stream, make_product
from test_hub import recv_until, room_url

FAST = pytest.mark.parametrize("node_settings", [{"chat_min_gap_ms": 1,
                                                  "chat_staff_min_gap_ms": 1,
                                                  "ws_message_rate": 1000.0}])


async def shop_live(live: Live) -> dict[str, Any]:
    await make_brand(live)
    product = await make_product(live, sku="SKU-1", stock=5)
    return await make_live_stream(live, [product["id"]])


async def joined(live: Live, stream_id: str, token: str | None = None) -> ClientConnection:
    ws = await connect(room_url(live, stream_id, token))
    await recv_until(ws, "snapshot")
    return ws


async def say(ws: ClientConnection, text: str, ref: str = "r") -> dict[str, Any]:
    """Send a chat message; the answer to it: its echo (the chat frame written just before
    its ack), an error or a notice."""
    await ws.send(orjson.dumps({"type": "chat", "text": text, "ref": ref}).decode())
    last_chat: dict[str, Any] = {}
    async with asyncio.timeout(5 * UNIT):
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] in ("error", "notice") and message.get("ref") == ref:
                return dict(message)
            if message["type"] == "chat":
                last_chat = message
            if message["type"] == "ack" and message["ref"] == ref:
                # The next message, the same user's too, is posted at least 2 ms of server
                # time later: FAST's floor is 1 ms, and two messages within one millisecond
                # were rightly refused `too-fast`, which a faster node made happen.
                await asyncio.sleep(0.002)
                return last_chat


async def hear(ws: ClientConnection, text: str, *, refuse: str | None = None) -> dict[str, Any]:
    """The chat message with `text` from the socket's frames; fails if `refuse` comes first."""
    async with asyncio.timeout(5 * UNIT):
        while True:
            message = orjson.loads(await ws.recv())
            if message["type"] == "chat":
                texts = [m["text"] for m in message["messages"]]
                assert refuse is None or refuse not in texts, f"{refuse!r} was delivered"
                for m in message["messages"]:
                    if m["text"] == text:
                        return dict(m)


async def join_chat(ws: ClientConnection) -> tuple[dict[str, Any], list[str]]:
    """The snapshot and the recent chat a joiner is given: the snapshot's (read up to a
    second before), then a chat frame of what the room heard since, before the full state."""
    snap = await recv_until(ws, "snapshot")
    by_id = {m["id"]: m["text"] for m in snap["chat"]["messages"]}
    async with asyncio.timeout(5 * UNIT):
        while (message := orjson.loads(await ws.recv()))["type"] != "state":
            if message["type"] == "chat":
                by_id.update((m["id"], m["text"]) for m in message["messages"])
    return snap, [by_id[i] for i in sorted(by_id, key=lambda i: tuple(map(int, i.split("-"))))]


def chat_api(live: Live, stream_id: str, tail: str = "") -> str:
    return f"/api/v1/streams/{stream_id}/chat{tail}"


async def test_signed_in_viewers_chat_and_everyone_in_the_room_reads_it(live: Live) -> None:
    stream = await shop_live(live)
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    anon = await joined(live, stream["id"])
    host = await joined(live, stream["id"], live.token("creator", "cleo"))
    echo = await say(alice, "  hello\u202e  everyone\n")
    assert echo["messages"][0]["text"] == "hello everyone"  # cleaned: bidi override, spaces
    got = await hear(anon, "hello everyone")
    assert got["user"] == "buyer:alice" and got["badges"] == [] and got["name"] == "viewer lice"
    assert got["id"] == echo["messages"][0]["id"] and got["media_ms"] >= 0
    assert (await say(host, "welcome!"))["messages"][0]["badges"] == ["host"]
    assert (await hear(alice, "welcome!"))["badges"] == ["host"]
    refused = await say(anon, "me too", ref="anon")
    assert refused["type"] == "error" and refused["code"] == "sign-in-to-chat"
    history = (await live.http.get(chat_api(live, stream["id"]))).json()["items"]
    assert [m["text"] for m in history] == ["welcome!", "hello everyone"]
    async with connect(room_url(live, stream["id"])) as late:
        snap, recent = await join_chat(late)
        assert recent == ["hello everyone", "welcome!"]
        assert snap["chat"]["settings"] == {"slow_s": 0, "followers_only": False,
                                            "keyword": "SOLD", "claim_mode": "cart"}
    for ws in (alice, anon, host):
        await ws.close()


async def test_one_message_a_second_per_user_across_all_its_sockets(live: Live) -> None:
    stream = await shop_live(live)
    token = live.token("buyer", "alice")
    one, two = await joined(live, stream["id"], token), await joined(live, stream["id"], token)
    assert (await say(one, "a"))["type"] == "chat"
    refused = await say(two, "b", ref="fast")
    assert refused["type"] == "error" and refused["code"] == "too-fast"
    await one.close()
    await two.close()


@FAST
async def test_the_same_words_again_are_refused_and_slow_mode_holds_server_side(live: Live) -> None:
    stream = await shop_live(live)
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    host = await joined(live, stream["id"], live.token("creator", "cleo"))
    assert (await say(alice, "Great deal"))["type"] == "chat"
    dup = await say(alice, "GREAT   deal", ref="dup")
    assert dup["type"] == "error" and dup["code"] == "duplicate"
    r = await live.http.patch(chat_api(live, stream["id"], "/settings"), json={"slow_s": 30},
                              headers=live.auth("creator", "cleo"))
    assert r.status_code == 200 and r.json()["slow_s"] == 30
    event = await recv_until(alice, "chat.settings")
    assert event["slow_s"] == 30 and event["followers_only"] is False
    slow = await say(alice, "one", ref="slow")  # her last message was under 30 s ago
    assert slow["type"] == "error" and slow["code"] == "slow-mode"
    async with await joined(live, stream["id"], live.token("buyer", "bob")) as bob:
        assert (await say(bob, "first of mine"))["type"] == "chat"
        assert (await say(bob, "second", ref="b2"))["code"] == "slow-mode"
    assert (await say(host, "hosts are not slowed"))["type"] == "chat"
    assert (await say(host, "not at all"))["type"] == "chat"
    await alice.close()
    await host.close()


@FAST
async def test_a_deleted_message_leaves_every_screen_the_log_and_late_joiners(live: Live) -> None:
    stream = await shop_live(live)
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    watchers = [await joined(live, stream["id"]) for _ in range(3)]
    obs = await connect(room_url(live, stream["id"]) + "?client=obs")
    await recv_until(obs, "snapshot")
    mid = (await say(alice, "buy elsewhere"))["messages"][0]["id"]
    await say(alice, "sorry")
    r = await live.http.delete(chat_api(live, stream["id"], f"/messages/{mid}"),
                               headers=live.auth("moderator", "cleo"))
    assert r.status_code == 204
    for ws in (*watchers, obs, alice):
        assert (await recv_until(ws, "chat.deleted"))["id"] == mid
    history = (await live.http.get(chat_api(live, stream["id"]))).json()["items"]
    assert [m["text"] for m in history] == ["sorry"]
    async with connect(room_url(live, stream["id"])) as late:
        assert (await join_chat(late))[1] == ["sorry"]
    again = await live.http.delete(chat_api(live, stream["id"], f"/messages/{mid}"),
                                   headers=live.auth("creator", "cleo"))
    assert again.status_code == 404
    audit = (await live.http.get(chat_api(live, stream["id"], "/audit"),
                                 headers=live.auth("creator", "cleo"))).json()["items"]
    assert audit[0]["action"] == "delete" and audit[0]["target"] == mid
    assert audit[0]["by"] == "moderator:cleo"
    for ws in (*watchers, obs, alice):
        await ws.close()


@FAST
async def test_a_ban_stops_the_user_at_once_and_tells_their_socket(live: Live) -> None:
    stream = await shop_live(live)
    mallory = await joined(live, stream["id"], live.token("buyer", "mallory"))
    bob = await joined(live, stream["id"], live.token("buyer", "bob"))
    await say(mallory, "spam 1")
    r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                             json={"user": "buyer:mallory"}, headers=live.auth("creator", "cleo"))
    assert r.status_code == 201 and r.json()["until_ms"] is None
    told = await recv_until(mallory, "error")
    assert told["code"] == "banned"
    assert (await recv_until(bob, "chat.banned"))["user"] == "buyer:mallory"
    refused = await say(mallory, "spam 2", ref="after")
    assert refused["type"] == "error" and refused["code"] == "banned"
    await say(bob, "marker")
    await hear(bob, "marker", refuse="spam 2")
    lifted = await live.http.delete(chat_api(live, stream["id"], "/bans/buyer:mallory"),
                                    headers=live.auth("creator", "cleo"))
    assert lifted.status_code == 204
    assert (await say(mallory, "I'll behave"))["type"] == "chat"
    await mallory.close()
    await bob.close()


@FAST
async def test_a_ban_takes_the_users_messages_out_of_the_log_and_the_review_queue(
        live: Live) -> None:
    stream = await shop_live(live)
    auth = live.auth("creator", "cleo")
    await live.http.put("/api/v1/creators/cleo/chat/blocked-words", json={"words": ["scam"]},
                        headers=auth)
    mallory = await joined(live, stream["id"], live.token("buyer", "mallory"))
    bob = await joined(live, stream["id"], live.token("buyer", "bob"))
    await say(mallory, "spam 1")
    await say(bob, "hi all")
    await say(mallory, "spam 2")
    assert (await say(mallory, "a scam", ref="h"))["code"] == "held"
    await say(bob, "held ones wait")
    assert (await say(bob, "a scam too", ref="b"))["code"] == "held"
    r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                             json={"user": "buyer:mallory", "duration_s": 600}, headers=auth)
    assert r.status_code == 201
    await recv_until(bob, "chat.banned")  # the room heard the ban (and the chat before it)
    history = (await live.http.get(chat_api(live, stream["id"]))).json()["items"]
    assert [m["text"] for m in history] == ["held ones wait", "hi all"]
    async with connect(room_url(live, stream["id"])) as late:
        assert (await join_chat(late))[1] == ["hi all", "held ones wait"]
    held = (await live.http.get(chat_api(live, stream["id"], "/held"), headers=auth)).json()
    assert [m["text"] for m in held["items"]] == ["a scam too"]
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/end", headers=auth)
    assert r.status_code == 200
    late_approval = await live.http.post(
        chat_api(live, stream["id"], f"/held/{held['items'][0]['id']}/approve"), headers=auth)
    assert late_approval.status_code == 409
    assert late_approval.json()["type"].endswith("chat-closed")
    await mallory.close()
    await bob.close()


@FAST
async def test_a_time_out_ends_and_a_channel_ban_holds_in_the_creators_next_show(live: Live) -> None:
    stream = await shop_live(live)
    eve = await joined(live, stream["id"], live.token("buyer", "eve"))
    r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                             json={"user": "buyer:eve", "duration_s": 60},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 201 and r.json()["until_ms"] > 0
    assert (await recv_until(eve, "error"))["code"] == "timed-out"
    assert (await say(eve, "hi", ref="t"))["code"] == "timed-out"
    r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                             json={"user": "buyer:eve", "scope": "channel"},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 201
    bans = (await live.http.get(chat_api(live, stream["id"], "/bans"),
                                headers=live.auth("creator", "cleo"))).json()
    assert bans["channel"] == [{"user": "buyer:eve", "until_ms": None}]
    product = await make_product(live, sku="SKU-2", stock=5)
    next_show = await make_live_stream(live, [product["id"]])
    async with await joined(live, next_show["id"], live.token("buyer", "eve")) as ws:
        assert (await say(ws, "new show, new me", ref="n"))["code"] == "banned"
        lifted = await live.http.delete(  # lifted in the next show: her socket hears of it
            chat_api(live, next_show["id"], "/bans/buyer:eve?scope=channel"),
            headers=live.auth("creator", "cleo"))
        assert lifted.status_code == 204
        await recv_until(ws, "chat.unbanned")
        assert (await say(ws, "thank you"))["type"] == "chat"
    r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                             json={"user": "buyer:eve", "duration_s": 600, "scope": "channel"},
                             headers=live.auth("creator", "cleo"))
    assert r.status_code == 201
    async with await joined(live, next_show["id"], live.token("buyer", "eve")) as ws:
        timed_out = await say(ws, "and now?", ref="t2")
        assert timed_out["code"] == "timed-out"
    await eve.close()


async def test_only_the_host_its_moderators_and_operators_moderate(live: Live) -> None:
    stream = await shop_live(live)
    url = chat_api(live, stream["id"], "/clear")
    cells = {("buyer", "alice"): 403, ("creator", "other"): 403, ("brand", "acme"): 403,
             ("moderator", "other"): 403, ("creator", "cleo"): 204, ("moderator", "cleo"): 204,
             ("operator", "ops"): 204}
    for (role, subject), status in cells.items():
        r = await live.http.post(url, headers=live.auth(role, subject))
        assert r.status_code == status, (role, subject, r.text)
        if status == 403:
            assert r.headers["content-type"] == "application/problem+json"
    assert (await live.http.post(url)).status_code == 401
    bans = {"moderator:cleo": 422, "creator:cleo": 422, "operator:ops": 422,
            "creator:other": 201, "moderator:other": 201}  # staff of another channel: not here
    for user, status in bans.items():
        r = await live.http.post(chat_api(live, stream["id"], "/bans"), json={"user": user},
                                 headers=live.auth("creator", "cleo"))
        assert r.status_code == status, (user, r.text)
        if status == 422:
            assert r.json()["type"].endswith("cannot-ban-staff")


async def test_another_channels_staff_chat_here_as_anyone_does(live: Live) -> None:
    stream = await shop_live(live)
    async with await joined(live, stream["id"], live.token("moderator", "other")) as ws:
        posted = (await say(ws, "hello"))["messages"][0]
        assert posted["badges"] == [] and "oderator" not in posted["name"]
        assert (await say(ws, "again", ref="x"))["code"] == "too-fast"  # a viewer's rate


@pytest.mark.parametrize("node_settings", [{"chat_min_gap_ms": 1,
                                            "chat_staff_min_gap_ms": 60_000}])
async def test_staff_have_a_floor_and_a_brand_the_viewers_rules(live: Live) -> None:
    stream = await shop_live(live)  # the brand `acme` has a product in the lineup
    host = await joined(live, stream["id"], live.token("creator", "cleo"))
    brand = await joined(live, stream["id"], live.token("brand", "acme"))
    assert (await say(host, "welcome"))["type"] == "chat"
    assert (await say(host, "and again", ref="h"))["code"] == "too-fast"
    assert (await say(brand, "10% off"))["messages"][0]["badges"] == ["brand"]
    assert (await say(brand, "10% OFF", ref="b"))["code"] == "duplicate"
    await host.close()
    await brand.close()


@FAST
async def test_followers_only_and_the_announcement_and_clear_reach_everyone(live: Live) -> None:
    stream = await shop_live(live)
    fan, stranger = "u_" + "a" * 32, "u_" + "b" * 32
    await live.services.follows.follow(fan, "cleo", 1)
    fan_ws = await joined(live, stream["id"], live.token("buyer", fan))
    stranger_ws = await joined(live, stream["id"], live.token("buyer", stranger))
    auth = live.auth("creator", "cleo")
    await live.http.patch(chat_api(live, stream["id"], "/settings"),
                          json={"followers_only": True}, headers=auth)
    assert (await say(fan_ws, "I follow"))["type"] == "chat"
    assert (await say(stranger_ws, "I don't", ref="s"))["code"] == "followers-only"
    r = await live.http.put(chat_api(live, stream["id"], "/announcement"),
                            json={"text": "Free shipping tonight"}, headers=auth)
    assert r.status_code == 200
    assert (await recv_until(stranger_ws, "chat.announcement"))["text"] == "Free shipping tonight"
    assert (await live.http.post(chat_api(live, stream["id"], "/clear"), headers=auth)).status_code == 204
    await recv_until(stranger_ws, "chat.cleared")
    async with connect(room_url(live, stream["id"])) as late:
        snap, recent = await join_chat(late)
        assert recent == []
        assert snap["chat"]["announcement"] == "Free shipping tonight"
    await fan_ws.close()
    await stranger_ws.close()


@FAST
async def test_blocked_words_are_held_for_review_and_posted_on_approval(live: Live) -> None:
    stream = await shop_live(live)
    auth = live.auth("creator", "cleo")
    r = await live.http.put("/api/v1/creators/cleo/chat/blocked-words",
                            json={"words": ["Scam", "fake site"]}, headers=auth)
    assert r.status_code == 200 and r.json()["words"] == ["fake site", "scam"]
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    bob = await joined(live, stream["id"], live.token("buyer", "bob"))
    host = await joined(live, stream["id"], live.token("creator", "cleo"))
    notice = await say(alice, "this is a SCAM", ref="h")
    assert notice["type"] == "notice" and notice["code"] == "held"
    held = await hear(host, "this is a SCAM")
    assert held["held"] is True
    queue = (await live.http.get(chat_api(live, stream["id"], "/held"), headers=auth)).json()
    assert [m["id"] for m in queue["items"]] == [held["id"]]
    await say(alice, "a classic", ref="c")  # "class" is not "scam": whole words only
    await hear(bob, "a classic", refuse="this is a SCAM")
    r = await live.http.post(chat_api(live, stream["id"], f"/held/{held['id']}/approve"),
                             headers=auth)
    assert r.status_code == 200
    posted = await hear(bob, "this is a SCAM")
    assert "held" not in posted
    assert (await live.http.get(chat_api(live, stream["id"], "/held"), headers=auth)).json() == {"items": []}
    for ws in (alice, bob, host):
        await ws.close()


@FAST
async def test_reactions_are_summed_into_the_rooms_state(live: Live) -> None:
    stream = await shop_live(live)
    async with connect(room_url(live, stream["id"])) as ws:
        await recv_until(ws, "snapshot")
        for emoji in ("fire", "fire", "heart"):
            await ws.send(orjson.dumps({"type": "react", "emoji": emoji}).decode())
        await ws.send(orjson.dumps({"type": "react", "emoji": "poop", "ref": "x"}).decode())
        assert (await recv_until(ws, "error"))["code"] == "bad-field"
        async with asyncio.timeout(5 * UNIT):
            while (await recv_until(ws, "state")).get("reactions") != {"fire": 2, "heart": 1}:
                pass


@FAST
async def test_hostile_chat_frames_never_break_the_room(live: Live) -> None:
    stream = await shop_live(live)
    rng = random.Random(12)
    alphabet = ["a", "\x00", "\u202e", "\u0301", "\ud800", "\U0001f525", "\u200d", " ", "\n",
                "https://x.io", "\uffff", "\x7f"]
    async with connect(room_url(live, stream["id"], live.token("buyer", "mallory"))) as bad, \
            connect(room_url(live, stream["id"])) as good:
        await recv_until(bad, "snapshot")
        await recv_until(good, "snapshot")
        for i in range(10_000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
            frame: Any = {"type": "chat", "text": text}
            if i % 7 == 0:
                frame["text"] = rng.choice([None, 5, ["x"], {"a": 1}, "x" * 3000])
            await bad.send(json.dumps(frame))  # lone surrogates as \ud800 escapes, too
        await bad.send(orjson.dumps({"type": "ping", "ref": "last"}).decode())
        assert (await recv_until(bad, "error"))  # the socket is still answered
        async with connect(room_url(live, stream["id"], live.token("buyer", "alice"))) as alice:
            await recv_until(alice, "snapshot")
            assert (await say(alice, "still fine"))["type"] == "chat"
        r = await live.http.post(f"/api/v1/streams/{stream['id']}/pins",
                                 json={"product_id": stream["lineup"][0]},
                                 headers=live.auth("creator", "cleo"))
        assert r.status_code == 200
        await recv_until(good, "pin")  # the room carries on for its other sockets


async def test_invalid_utf8_in_a_msgpack_chat_is_a_bad_frame_not_a_crash(live: Live) -> None:
    stream = await shop_live(live)
    url = room_url(live, stream["id"], live.token("buyer", "alice"))
    async with connect(url, subprotocols=["livecart.v1.msgpack"]) as ws:  # type: ignore[list-item]
        await ws.recv()
        bad = b"\x82\xa4type\xa4chat\xa4text\xa2\xff\xfe"  # text: two bytes, not UTF-8
        await ws.send(bad)
        async with asyncio.timeout(5 * UNIT):
            while True:
                message = msgpack.unpackb(await ws.recv())
                if message.get("type") == "error":
                    assert message["code"] == "malformed"
                    break


@FAST
async def test_a_buyer_of_the_show_wears_the_buyer_badge(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live, sku="SKU-1", stock=5)
    stream = await make_live_stream(live, [product["id"]])
    await give_wallet(live, "bob")
    async with await joined(live, stream["id"], live.token("buyer", "bob")) as bob:
        assert (await say(bob, "before"))["messages"][0]["badges"] == []
        r = await buy(live, "bob", product["id"], stream=stream["id"])
        assert r.status_code == 201
        await live.services.aggregator.drain()
        assert (await say(bob, "after"))["messages"][0]["badges"] == ["buyer"]


@FAST
async def test_chat_and_its_moderation_cross_nodes(live: Live, valkey: Any, tmp_path: Any) -> None:
    """Two nodes on one Valkey: a message posted on one reaches the other's sockets, a
    deletion made through the other's API reaches the first's, a ban reaches the banned
    user's socket wherever it is."""
    stream = await shop_live(live)
    services, server, task, url = await start_node(make_settings(
        valkey, tmp_path / "b", chat_min_gap_ms=1, ws_message_rate=1000.0))
    ws_b = await start_hub(services, url)
    try:
        alice = await joined(live, stream["id"], live.token("buyer", "alice"))
        bob = await connect(f"{ws_b}/ws/streams/{stream['id']}?access_token="
                            + live.token("buyer", "bob"))
        await recv_until(bob, "snapshot")
        mid = (await say(alice, "from node A"))["messages"][0]["id"]
        assert (await hear(bob, "from node A"))["id"] == mid
        async with httpx.AsyncClient(base_url=url) as http_b:
            r = await http_b.delete(chat_api(live, stream["id"], f"/messages/{mid}"),
                                    headers=live.auth("creator", "cleo"))
            assert r.status_code == 204
        assert (await recv_until(alice, "chat.deleted"))["id"] == mid
        r = await live.http.post(chat_api(live, stream["id"], "/bans"),
                                 json={"user": "buyer:bob", "duration_s": 30},
                                 headers=live.auth("creator", "cleo"))
        assert r.status_code == 201
        assert (await recv_until(bob, "error"))["code"] == "timed-out"
        assert (await say(bob, "through B", ref="b"))["code"] == "timed-out"
        await alice.close()
        await bob.close()
    finally:
        await stop_node(services, server, task)


@FAST
async def test_a_valkey_that_refuses_writes_is_an_error_frame_and_the_socket_stays(
        live: Live, rclient: Any) -> None:
    """Valkey out of memory (a real refusal: `maxmemory` with no eviction) while a viewer
    chats and the host pins: each gets an `unavailable` error frame with its ref, the
    sockets stay open, and both work again once Valkey takes writes."""
    stream = await shop_live(live)
    product = stream["lineup"][0]
    alice = await joined(live, stream["id"], live.token("buyer", "alice"))
    host = await joined(live, stream["id"], live.token("creator", "cleo"))
    await rclient.config_set("maxmemory-policy", "noeviction")
    await rclient.config_set("maxmemory", "1")
    try:
        refused = await say(alice, "anyone there?", ref="c1")
        assert (refused["type"], refused["code"], refused["ref"]) == ("error", "unavailable", "c1")
        await host.send(orjson.dumps({"type": "pin", "product_id": product, "ref": "p1"}).decode())
        error = await recv_until(host, "error")
        assert (error["code"], error["ref"]) == ("unavailable", "p1")
    finally:
        await rclient.config_set("maxmemory", "0")
    back = await say(alice, "back again", ref="c2")
    assert back.get("messages", [{}])[-1].get("text") == "back again", back
    await host.send(orjson.dumps({"type": "pin", "product_id": product, "ref": "p2"}).decode())
    assert (await recv_until(host, "pin"))["product_id"] == product
    await alice.close()
    await host.close()
