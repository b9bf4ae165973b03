"""Offers that cannot work get a 400 problem that says why, never a 500 and never a peer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from hypothesis import given, settings, strategies as st

from conftest import Live
from live.video.sdp import MAX_SDP_BYTES, Role, SdpError, check_offer
from loadtest.video_source import CounterTrack
from shop import make_brand, make_product


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return {"video_ice_hosts": ("127.0.0.1",)}


async def _offer(kind: str) -> str:
    pc = RTCPeerConnection()
    if kind == "publisher":
        pc.addTransceiver(CounterTrack(), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        pc.createDataChannel("overlay")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def _drop_h264(sdp: str) -> str:
    pts = re.findall(r"a=rtpmap:(\d+) H264/", sdp)
    out = [line for line in sdp.split("\r\n")
           if not any(line.startswith(f"a={a}:{pt} ")
                      for pt in pts for a in ("rtpmap", "fmtp", "rtcp-fb"))]
    return "\r\n".join(out)


MUTATIONS = {
    "not sdp": lambda s: "hello",
    "empty": lambda s: "",
    "no v=0": lambda s: s.replace("v=0\r\n", ""),
    "no media": lambda s: s.split("m=")[0],
    "no fingerprint": lambda s: re.sub(r"a=fingerprint:[^\r]*\r\n", "", s),
    "no ice-ufrag": lambda s: re.sub(r"a=ice-ufrag:[^\r]*\r\n", "", s),
    "bad fingerprint": lambda s: re.sub(r"(a=fingerprint:sha-256) \S+", r"\1 ZZ", s),
    "bad candidate": lambda s: s.replace("a=candidate:", "a=candidate:x ", 1),
    "bad media line": lambda s: re.sub(r"m=video \d+", "m=video nine", s, count=1),
    "NUL byte": lambda s: s.replace("s=-", "s=\x00"),
}


async def _post(live: Live, path: str, body: str | bytes, headers: dict[str, str]) -> Any:
    return await live.http.post(path, content=body, headers={"Content-Type": "application/sdp", **headers})


async def test_bad_offers_are_400_problems(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    stream = (await live.http.post("/api/v1/streams", json={"title": "D", "lineup": [product["id"]]},
                                   headers=live.auth("creator", "cleo"))).json()
    whip, whep = (f"/api/v1/streams/{stream['id']}/{kind}" for kind in ("whip", "whep"))
    host = live.auth("creator", "cleo")
    publisher_offer = await _offer("publisher")
    for name, mutate in MUTATIONS.items():
        r = await _post(live, whip, mutate(publisher_offer), host)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", name
        assert r.json()["detail"], name
    assert live.services.video.peers.count() == 0, "no refused offer leaves a peer behind"
    assert (await live.http.get(f"/api/v1/streams/{stream['id']}")).json()["state"] == "scheduled"

    # A viewer's offer must be a viewer's offer, and must take H.264.
    viewer_offer = await _offer("viewer")
    r = await _post(live, whip, viewer_offer, host)
    assert r.status_code == 400 and "send video" in r.json()["detail"]
    r = await _post(live, whip, publisher_offer, host)
    assert r.status_code == 201
    r = await _post(live, whep, _drop_h264(viewer_offer), {})
    assert r.status_code == 400 and "H264" in r.json()["detail"]
    r = await _post(live, whep, publisher_offer, {})
    assert r.status_code == 400
    for name, mutate in MUTATIONS.items():
        r = await _post(live, whep, mutate(viewer_offer), {})
        assert r.status_code == 400, (name, r.status_code, r.text)
    assert live.services.video.peers.count() == 1  # only the publisher

    # Wrong media type, oversized, PATCH (no trickle), unknown sessions.
    r = await live.http.post(whep, content=viewer_offer, headers={"Content-Type": "application/json"})
    assert r.status_code == 415
    r = await _post(live, whep, "v=0\r\n" + "a=x\r\n" * (MAX_SDP_BYTES // 4), {})
    assert r.status_code == 413
    r = await live.http.patch(f"{whep}/nope", content="a=end-of-candidates",
                              headers={"Content-Type": "application/trickle-ice-sdpfrag"})
    assert r.status_code == 405
    assert (await live.http.delete(f"{whep}/nope")).status_code == 404
    assert (await live.http.delete(f"{whip}/nope", headers=host)).status_code == 404
    assert (await live.http.get(f"{whep}")).status_code == 405


def test_check_offer_reads_what_each_side_needs() -> None:
    viewer = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
              ""
              "a=ice-ufrag:abcd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=recvonly\r\n"
              "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\n"
              "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
    text, summary = check_offer(viewer.encode(), Role.VIEWER)
    assert text == viewer
    assert summary.video and not summary.audio and summary.data_channel
    assert summary.video_codecs == {"VP8", "H264"}
    with pytest.raises(SdpError, match="must send video"):
        check_offer(viewer.encode(), Role.PUBLISHER)
    with pytest.raises(SdpError, match="H264"):
        check_offer(viewer.replace("H264", "AV1").encode(), Role.VIEWER)
    with pytest.raises(SdpError, match="UTF-8"):
        check_offer(b"v=0\r\n\xff", Role.VIEWER)
    with pytest.raises(SdpError, match="over"):
        check_offer(b"v=0" + b" " * MAX_SDP_BYTES, Role.VIEWER)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_check_offer_refuses_garbage_with_sdp_error_only(raw: bytes) -> None:
    for role in Role:
        try:
            check_offer(raw, role)
        except SdpError:
            pass
