"""The hub protocol as values, both directions, without sockets: what is encoded decodes
to the same value on either wire, and bad frames are ProtocolErrors, never anything else."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson
import pytest
from hypothesis import given, settings, strategies as st

from live.hub.protocol import (EVENT_TYPES, Ack, ClientMessage, EndStream, Earnings, Error, Event,
                               Like, Pin, ProductSeen, ProductTap, ProtocolError, Sales,
                               ServerMessage, Snapshot, StartDeal,
                               State, Unpin, Wire, decode_client, decode_server, encode_client,
                               encode_server, event_frame, ws_frame)

ids = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=64)
refs = st.none() | st.text(max_size=64)
small = st.integers(0, 2**53)
json_values = st.recursive(st.none() | st.booleans() | small | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=10)
maps = st.dictionaries(ids, json_values, max_size=4)

client_messages: st.SearchStrategy[ClientMessage] = st.one_of(
    st.builds(Like, st.integers(1, 50), refs),
    st.builds(ProductSeen, ids, refs), st.builds(ProductTap, ids, refs),
    st.builds(Pin, ids, refs), st.builds(Unpin, ids, refs),
    st.builds(StartDeal, ids, st.integers(1, 10**10), st.integers(1, 1_000_000),
              st.integers(1, 100), st.integers(10, 300), st.integers(10, 86400), refs),
    st.builds(EndStream, refs))

server_messages: st.SearchStrategy[ServerMessage] = st.one_of(
    st.builds(Snapshot, seq=small, stream=maps, tray=st.lists(ids, max_size=3),
              pinned=st.lists(ids, max_size=3), deals=maps, products=maps,
              stock=st.dictionaries(ids, st.dictionaries(ids, small, max_size=2), max_size=2),
              deal_sold=st.dictionaries(ids, small, max_size=2), viewers=small, likes=small,
              sales=st.dictionaries(ids, small, max_size=3), just_bought=st.lists(maps, max_size=2),
              server_time_ms=st.none() | small),
    st.builds(State, stock=st.none() | st.dictionaries(ids, st.dictionaries(ids, small, max_size=2)),
              viewers=st.none() | small, likes=st.none() | small,
              just_bought=st.none() | st.lists(maps, min_size=1, max_size=2)),
    st.builds(Event, small, st.sampled_from(sorted(EVENT_TYPES)), small,
              st.dictionaries(st.sampled_from(["product_id", "pinned", "state", "lineup"]),
                              json_values, max_size=3)),
    st.builds(Ack, refs), st.builds(Error, ids, st.text(max_size=80), refs),
    st.builds(Sales, maps), st.builds(Earnings, maps))


@settings(max_examples=300, deadline=None)
@given(client_messages, st.sampled_from(list(Wire)))
def test_a_client_message_decodes_to_itself(message: ClientMessage, wire: Wire) -> None:
    assert decode_client(encode_client(message, wire), wire) == message


@settings(max_examples=300, deadline=None)
@given(server_messages, st.sampled_from(list(Wire)))
def test_a_server_message_decodes_to_itself(message: ServerMessage, wire: Wire) -> None:
    raw = encode_server(message, wire)
    assert decode_server(raw.decode() if wire is Wire.JSON else raw, wire) == message


def test_the_wire_form_is_the_documented_one() -> None:
    assert orjson.loads(encode_server(Error("bad-field", "no", "r1"), Wire.JSON)) == {
        "type": "error", "code": "bad-field", "message": "no", "ref": "r1"}
    assert orjson.loads(encode_server(State(likes=3), Wire.JSON)) == {"type": "state", "likes": 3}
    assert orjson.loads(encode_server(Event(7, "pin", 5, {"product_id": "p"}), Wire.JSON)) == {
        "seq": 7, "type": "pin", "at_ms": 5, "product_id": "p"}
    assert encode_client(StartDeal("p", 100, 5, 1, 10, 60, "r"), Wire.JSON) == (
        '{"type":"deal.start","product_id":"p","price_minor":100,"quantity":5,'
        '"per_buyer_limit":1,"countdown_s":10,"duration_s":60,"ref":"r"}')
    assert encode_client(ProductSeen("p"), Wire.JSON) == '{"type":"product_seen","product_id":"p"}'
    assert decode_client('{"type":"product_tap","product_id":"p","ref":"t"}', Wire.JSON) == (
        ProductTap("p", "t"))


def test_a_logged_event_passes_through_json_untouched_and_is_reencoded_for_msgpack() -> None:
    raw = b'{"seq":3,"type":"pin","at_ms":9,"product_id":"p","pinned":["p"]}'
    assert event_frame(raw, Wire.JSON) == ws_frame(raw, Wire.JSON)
    assert event_frame(raw, Wire.MSGPACK) == ws_frame(msgpack.packb(orjson.loads(raw)), Wire.MSGPACK)


@pytest.mark.parametrize("frame", ["", "[]", "1", '{"type":"nope"}', '{"type":"state","x":1}',
                                   '{"type":"pin"}', '{"no":"type"}', "{"])
def test_a_bad_server_frame_is_a_protocol_error(frame: str) -> None:
    with pytest.raises(ProtocolError):
        decode_server(frame, Wire.JSON)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200), st.sampled_from(list(Wire)))
def test_any_frame_either_decodes_or_is_a_protocol_error(frame: Any, wire: Wire) -> None:
    for decode in (decode_client, decode_server):
        try:
            decode(frame, wire)
        except ProtocolError:
            pass
