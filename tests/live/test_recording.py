"""Recording a show as CMAF HLS, end to end: a real aiortc publisher over WHIP (video and
audio) against a real node, then the node's playlist and files over HTTP, decoded with PyAV.

One show is published for ~6 s of media and shared by the tests of this module (the
recording is what they read; publishing it again per test would only cost time).
"""

from __future__ import annotations

import datetime
import io
import re
import shutil
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc.mediastreams import AudioStreamTrack

from conftest import Live
from loadtest.video_source import CounterTrack, read_counter
from loadtest.webrtc_peers import publish
from shop import eventually, make_brand, make_product, make_stream

LOOPBACK = {"video_ice_hosts": ("127.0.0.1",)}
M3U8 = "application/vnd.apple.mpegurl"


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return dict(LOOPBACK)


def parse_playlist(text: str) -> dict[str, Any]:
    """A strict reading of the media playlists the recorder writes (RFC 8216 section 4)."""
    lines = text.split("\n")
    assert lines[0] == "#EXTM3U" and text.endswith("\n")
    out: dict[str, Any] = {"segments": [], "tags": {}, "ended": False, "dateranges": []}
    pending: dict[str, Any] = {}
    for line in lines[1:-1]:
        assert line and line == line.strip(), f"blank or padded line {line!r}"
        if not line.startswith("#"):
            assert re.fullmatch(r"seg-[0-9]+\.m4s", line), line
            assert "duration" in pending and "map" in out, f"{line} has no EXTINF or map"
            out["segments"].append({**pending, "uri": line, "map": out["map"]})
            pending = {}
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXTINF":
            assert re.fullmatch(r"[0-9]+\.[0-9]+,", value), value
            pending["duration"] = float(value[:-1])
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            pending["date"] = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif tag == "#EXT-X-MAP":
            out["map"] = re.fullmatch(r'URI="(init-[0-9]+\.mp4)"', value).group(1)  # type: ignore[union-attr]
        elif tag == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif tag == "#EXT-X-DATERANGE":
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', value))
            out["dateranges"].append({k: v.strip('"') for k, v in attrs.items()})
        elif tag == "#EXT-X-ENDLIST":
            out["ended"] = True
        else:
            assert tag in ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE",
                           "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-INDEPENDENT-SEGMENTS",
                           "#EXT-X-PLAYLIST-TYPE"), tag
            out["tags"][tag] = value
    target = int(out["tags"]["#EXT-X-TARGETDURATION"])
    assert all(round(s["duration"]) <= target for s in out["segments"])
    assert all("date" in s for s in out["segments"])
    return out


def decode(init: bytes, segment: bytes) -> tuple[list[av.VideoFrame], list[int]]:
    """The segment's video frames and audio frame timestamps (48 kHz), decoded on its own."""
    with av.open(io.BytesIO(init + segment)) as container:
        frames = list(container.decode(video=0))
    with av.open(io.BytesIO(init + segment)) as container:
        audio = [f.pts for f in container.decode(audio=0)] if container.streams.audio else []
    return frames, audio


async def record_a_show(live: Live) -> dict[str, Any]:
    await make_brand(live)
    await make_brand(live, "other")
    stream = await make_stream(live, [(await make_product(live))["id"]])
    publisher = await publish(live.http, stream["id"], live.token("creator", "cleo"),
                              CounterTrack(), AudioStreamTrack())
    session = live.services.video.sessions[stream["id"]]
    recorder = session.recorder
    assert recorder is not None
    await eventually(lambda: len(recorder.writer.segments) >= 3, "three recorded segments", 30)
    live_playlist = await live.http.get(f"/hls/{stream['id']}/index.m3u8")
    metrics = (await live.http.get("/metrics")).text
    refused = await live.http.delete(f"/api/v1/streams/{stream['id']}/recording",
                                     headers=live.auth("creator", "cleo"))
    assert await publisher.stop() == 200
    await eventually(lambda: stream["id"] not in live.services.video.sessions, "video ended")
    return {"stream": stream, "origin_ms": session.clock.origin_ms, "live": live_playlist,
            "refused_while_live": refused, "writer": recorder.writer,
            "dropped": recorder.dropped, "metrics": metrics}


async def test_a_show_is_recorded_as_playable_hls(live: Live) -> None:
    show = await record_a_show(live)
    stream_id = show["stream"]["id"]
    state = (await live.http.get(f"/api/v1/streams/{stream_id}")).json()
    assert state["state"] == "ended" and state["hls_url"] == f"/hls/{stream_id}/index.m3u8"

    # While live: a live playlist (no ENDLIST), short-lived in caches; deleting is refused.
    assert show["live"].status_code == 200
    assert show["live"].headers["cache-control"] == "public, max-age=1"
    assert not parse_playlist(show["live"].text)["ended"]
    assert show["refused_while_live"].status_code == 409
    assert "livecart_recordings_active 1.0" in show["metrics"]

    r = await live.http.get(state["hls_url"])
    assert r.status_code == 200 and r.headers["content-type"].startswith(M3U8)
    assert r.headers["cache-control"] == "public, max-age=600"
    assert r.headers["etag"] and r.headers["last-modified"]
    playlist = parse_playlist(r.text)
    assert playlist["ended"] and playlist["tags"]["#EXT-X-PLAYLIST-TYPE"] == "VOD"
    segments = playlist["segments"]
    assert len(segments) >= 3 and show["dropped"] == 0

    inits: dict[str, bytes] = {}
    counters: list[int] = []
    frames_total = 0
    previous_end: int | None = None
    for segment in segments:
        if segment["map"] not in inits:
            got = await live.http.get(f"/hls/{stream_id}/{segment['map']}")
            assert got.status_code == 200
            assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
            inits[segment["map"]] = got.content
        got = await live.http.get(f"/hls/{stream_id}/{segment['uri']}")
        assert got.status_code == 200
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        frames, audio = decode(inits[segment["map"]], got.content)
        assert frames, f"{segment['uri']} has pictures"
        pts = [int(f.pts) for f in frames]
        assert pts == sorted(pts) and len(set(pts)) == len(pts)
        if previous_end is not None and not segment.get("discontinuity"):
            # Continuous: each segment starts where the last one's listed duration ends.
            assert pts[0] == previous_end
        previous_end = pts[0] + round(segment["duration"] * 90_000)
        # PROGRAM-DATE-TIME is the media clock's origin plus the first picture's media time.
        date_ms = int(segment["date"].timestamp() * 1000)
        assert date_ms == show["origin_ms"] + pts[0] * 1000 // 90_000
        counters += [c for c in map(read_counter, frames) if c is not None]
        frames_total += len(frames)
        assert audio, f"{segment['uri']} has sound"
        # Audio is on the same media clock (48 kHz ticks): it starts with the pictures.
        assert abs(audio[0] / 48_000 - pts[0] / 90_000) < 1.0
    assert frames_total == show["writer"].video_packets  # every recorded frame decodes
    assert counters == sorted(counters) and len(counters) >= frames_total - 1
    clock = [d for d in playlist["dateranges"] if d["CLASS"] == "com.livecart.media-clock"]
    origin = datetime.datetime.fromisoformat(clock[0]["START-DATE"].replace("Z", "+00:00"))
    assert int(origin.timestamp() * 1000) == show["origin_ms"]

    # Caches revalidate with the ETag.
    again = await live.http.get(state["hls_url"], headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


async def test_unknown_files_and_traversal_are_404(live: Live) -> None:
    show = await record_a_show(live)
    stream_id = show["stream"]["id"]
    (Path(live.services.settings.data_dir) / "secret.txt").write_text("no")
    for path in (f"/hls/{stream_id}/seg-999.m4s", f"/hls/{stream_id}/init-9.mp4",
                 f"/hls/{stream_id}/segments.jsonl", f"/hls/{stream_id}/index.m3u8.part",
                 "/hls/s_nosuchstream0/index.m3u8", "/hls/..%2F..%2Fsecret.txt/index.m3u8",
                 f"/hls/{stream_id}/..%2F..%2Fsecret.txt", f"/hls/{stream_id}/%2E%2E",
                 "/hls/../secret.txt", f"/hls/{stream_id}/seg-0.m4s/..%2F..%2F..%2Fsecret.txt"):
        r = await live.http.get(path)
        assert r.status_code == 404 and r.text != "no", path
    r = await live.http.get(f"/hls/{stream_id}/seg-999.m4s")
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_creator_or_a_featured_brand_deletes_a_recording(live: Live) -> None:
    show = await record_a_show(live)
    stream_id = show["stream"]["id"]
    url = f"/api/v1/streams/{stream_id}/recording"
    folder = Path(live.services.settings.data_dir) / "recordings" / stream_id
    kept = folder.with_name("kept")
    shutil.copytree(folder, kept)
    for role, subject in (("buyer", "bob"), ("brand", "other"), ("creator", "carl")):
        r = await live.http.delete(url, headers=live.auth(role, subject))
        assert r.status_code == 403, (role, r.text)
    assert (await live.http.delete(url)).status_code == 401
    assert (await live.http.delete(url, headers=live.auth("brand", "acme"))).status_code == 204
    assert (await live.http.get(f"/hls/{stream_id}/index.m3u8")).status_code == 404
    assert not folder.exists()
    assert (await live.http.delete(url, headers=live.auth("brand", "acme"))).status_code == 404
    shutil.copytree(kept, folder)
    assert (await live.http.delete(url, headers=live.auth("creator", "cleo"))).status_code == 204
    assert not folder.exists()


MSE_PLAY = """async (url) => {
  const text = await (await fetch(url)).text();
  const base = url.slice(0, url.lastIndexOf("/") + 1);
  const names = text.split("\\n").filter((l) => l && !l.startsWith("#"));
  const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)[1];
  const listed = text.split("\\n").filter((l) => l.startsWith("#EXTINF:"))
    .reduce((sum, l) => sum + parseFloat(l.slice(8)), 0);
  const video = document.createElement("video");
  video.muted = true;
  document.body.append(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((resolve) => source.addEventListener("sourceopen", resolve, { once: true }));
  const buffer = source.addSourceBuffer('video/mp4; codecs="avc1.42E01F,opus"');
  for (const name of [init, ...names]) {
    const data = await (await fetch(base + name)).arrayBuffer();
    buffer.appendBuffer(data);
    await new Promise((resolve, reject) => {
      buffer.addEventListener("updateend", resolve, { once: true });
      buffer.addEventListener("error", () => reject(new Error("append " + name)), { once: true });
    });
  }
  source.endOfStream();
  const ranges = [];
  for (let i = 0; i < buffer.buffered.length; i++) {
    ranges.push([buffer.buffered.start(i), buffer.buffered.end(i)]);
  }
  video.currentTime = ranges[0][0];
  await video.play();
  const shown = await new Promise((resolve) => video.requestVideoFrameCallback(
    (now, meta) => resolve(meta.presentedFrames)));
  return { ranges, listed, shown, width: video.videoWidth, tracks: buffer.audioTracks
    ? buffer.audioTracks.length : null, error: video.error && video.error.message };
}"""


async def test_chromium_plays_the_recording_through_media_source(live: Live, new_page: Any) -> None:
    """The files are what a browser's MSE takes (what hls.js feeds it): init and every
    segment append without error, into one continuous buffered range as long as the
    playlist says, and the picture plays."""
    show = await record_a_show(live)
    page = await new_page()
    await page.goto(f"{live.url}/healthz")
    result = await page.evaluate(MSE_PLAY, f"/hls/{show['stream']['id']}/index.m3u8")
    assert result["error"] is None and result["shown"] >= 1 and result["width"] == 640
    assert len(result["ranges"]) == 1, result  # no hole between segments
    start, end = result["ranges"][0]
    assert abs((end - start) - result["listed"]) < 0.1, result
