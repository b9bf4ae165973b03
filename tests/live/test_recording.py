"""Recording a show as CMAF HLS, end to end: a real aiortc publisher over WHIP (video and
audio) against a real node, then the node's playlist and files over HTTP, decoded with PyAV.

One show is published for ~6 s of media and shared by the tests of this module (the
recording is what they read; publishing it again per test would only cost time).
"""

from __future__ import annotations

import asyncio
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
from live.video import hls_http
from live.video.fmp4 import BoxReader
from live.video.recorder import Recorder
from loadtest.webrtc_peers import Publisher, publish
from shop import eventually, make_brand, make_product, make_stream

LOOPBACK = {"video_ice_hosts": ("127.0.0.1",)}
M3U8 = "application/vnd.apple.mpegurl"


@pytest.fixture
def node_settings() -> dict[str, Any]:
    return dict(LOOPBACK)


def _attributes(value: str) -> dict[str, str]:
    attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', value))
    return {k: v.strip('"') for k, v in attrs.items()}


def parse_playlist(text: str) -> dict[str, Any]:
    """A strict reading of the media playlists the recorder writes (RFC 8216 section 4,
    and RFC 8216bis's low-latency tags: parts, server control, the preload hint)."""
    lines = text.split("\n")
    assert lines[0] == "#EXTM3U" and text.endswith("\n")
    out: dict[str, Any] = {"segments": [], "tags": {}, "ended": False, "dateranges": [],
                           "open_parts": [], "hint": None}
    pending: dict[str, Any] = {"parts": []}
    for line in lines[1:-1]:
        assert line and line == line.strip(), f"blank or padded line {line!r}"
        assert out["hint"] is None, "the preload hint is the last line"
        if not line.startswith("#"):
            assert re.fullmatch(r"seg-[0-9]+\.m4s", line), line
            assert "duration" in pending and "map" in out, f"{line} has no EXTINF or map"
            out["segments"].append({**pending, "uri": line, "map": out["map"]})
            pending = {"parts": []}
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
            out["dateranges"].append(_attributes(value))
        elif tag == "#EXT-X-ENDLIST":
            out["ended"] = True
        elif tag == "#EXT-X-PART":
            attrs = _attributes(value)
            assert set(attrs) <= {"DURATION", "URI", "INDEPENDENT"}, attrs
            match = re.fullmatch(r"part-([0-9]+)-([0-9]+)\.m4s", attrs["URI"])
            assert match and re.fullmatch(r"[0-9]+\.[0-9]+", attrs["DURATION"]), attrs
            assert attrs.get("INDEPENDENT", "YES") == "YES", attrs
            pending["parts"].append({"uri": attrs["URI"], "duration": float(attrs["DURATION"]),
                                     "independent": "INDEPENDENT" in attrs,
                                     "run": int(match.group(1)),
                                     "number": int(match.group(2))})
        elif tag == "#EXT-X-PRELOAD-HINT":
            attrs = _attributes(value)
            assert attrs["TYPE"] == "PART" and set(attrs) == {"TYPE", "URI"}, attrs
            out["hint"] = attrs["URI"]
        elif tag in ("#EXT-X-SERVER-CONTROL", "#EXT-X-PART-INF"):
            out["tags"][tag] = _attributes(value)
        else:
            assert tag in ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE",
                           "#EXT-X-DISCONTINUITY-SEQUENCE", "#EXT-X-INDEPENDENT-SEGMENTS",
                           "#EXT-X-PLAYLIST-TYPE"), tag
            out["tags"][tag] = value
    out["open_parts"] = pending["parts"]
    assert out["tags"]["#EXT-X-VERSION"] == "7"
    target = int(out["tags"]["#EXT-X-TARGETDURATION"])
    assert all(round(s["duration"]) <= target for s in out["segments"])
    assert all("date" in s for s in out["segments"])
    first = int(out["tags"]["#EXT-X-MEDIA-SEQUENCE"])
    for n, segment in enumerate(out["segments"]):
        assert segment["uri"] == f"seg-{first + n}.m4s"  # numbered by the media sequence
    _check_parts(out)
    return out


def _check_parts(out: dict[str, Any]) -> None:
    """Low-latency: parts only while live, each within PART-TARGET, numbered on through
    the run, the first of a segment independent, a complete segment's parts summing to its
    EXTINF; the hint names the part after the last one."""
    listed = [(s, s["parts"]) for s in out["segments"] if s["parts"]]
    if out["ended"]:
        assert not listed and not out["open_parts"] and out["hint"] is None
        assert "#EXT-X-SERVER-CONTROL" not in out["tags"] and "#EXT-X-PART-INF" not in out["tags"]
        return
    control, info = out["tags"]["#EXT-X-SERVER-CONTROL"], out["tags"]["#EXT-X-PART-INF"]
    part_target = float(info["PART-TARGET"])
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(control["PART-HOLD-BACK"]) >= 3 * part_target - 1e-9
    for segment, parts in listed:
        assert parts[0]["independent"]
        assert abs(sum(p["duration"] for p in parts) - segment["duration"]) <= 1e-5 * len(parts)
    opened = out["open_parts"]
    assert not opened or opened[0]["independent"]
    every = [p for _, parts in listed for p in parts] + opened
    assert all(0 < p["duration"] <= part_target for p in every)
    assert [(p["run"], p["number"]) for p in every] == [
        (every[0]["run"], every[0]["number"] + i) for i in range(len(every))]
    assert out["hint"] == f"part-{every[-1]['run']}-{every[-1]['number'] + 1}.m4s", out["hint"]
    assert listed, "the live playlist lists the last segments' parts"


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


async def live_show(live: Live) -> tuple[str, Publisher, Recorder]:
    await make_brand(live)
    stream = await make_stream(live, [(await make_product(live))["id"]])
    publisher = await publish(live.http, stream["id"], live.token("creator", "cleo"),
                              CounterTrack(), AudioStreamTrack())
    recorder = live.services.video.sessions[stream["id"]].recorder
    assert recorder is not None
    await eventually(lambda: len(recorder.writer.segments) >= 3, "three recorded segments", 30)
    return stream["id"], publisher, recorder


def parts_of(data: bytes) -> list[str]:
    reader = BoxReader()
    boxes = [kind for kind, _ in reader.feed(data)]
    assert reader.pending == 0, "whole boxes only"
    return boxes


async def test_live_parts_are_the_segment_and_reloads_block_until_a_part_exists(
        live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    stream_id, publisher, recorder = await live_show(live)
    base = f"/hls/{stream_id}/"
    r = await live.http.get(base + "index.m3u8")
    assert r.headers["cache-control"] == "public, max-age=1"
    playlist = parse_playlist(r.text)
    control = playlist["tags"]["#EXT-X-SERVER-CONTROL"]
    assert playlist["tags"]["#EXT-X-PART-INF"]["PART-TARGET"] == "0.500"
    assert control["PART-HOLD-BACK"] == "1.500"

    # A complete segment's parts, fetched one by one: its bytes exactly, each part a
    # moof+mdat, decodable from the first (a keyframe) on, each adding pictures.
    segment = next(s for s in playlist["segments"] if s["parts"])
    init = (await live.http.get(base + segment["map"])).content
    parts: list[bytes] = []
    for part in segment["parts"]:
        got = await live.http.get(base + part["uri"])
        assert got.status_code == 200 and got.headers["content-type"] == "video/iso.segment"
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert set(parts_of(got.content)) == {"moof", "mdat"}
        parts.append(got.content)
    whole = (await live.http.get(base + segment["uri"])).content
    assert b"".join(parts) == whole
    shown = 0
    for count in range(1, len(parts) + 1):
        frames, _ = decode(init, b"".join(parts[:count]))
        assert len(frames) > shown
        if count == 1:
            assert frames[0].key_frame
        shown = len(frames)
    assert shown == len(decode(init, whole)[0])

    # A blocking reload for the next part: held until the playlist has it (or the segment
    # was cut just before it: then the segment is complete, and the hinted part, the next
    # one whatever segment it is in, opens the next segment).
    seq = 0
    for _ in range(3):
        progress = recorder.writer.progress
        seq, index = progress.last_seq + 1, progress.parts  # the next part, from now
        hinted = f"part-{progress.run}-{progress.next_part}.m4s"
        assert not progress.has(seq, index)
        reload = asyncio.create_task(live.http.get(
            base + f"index.m3u8?_HLS_msn={seq}&_HLS_part={index}"))
        fetched = asyncio.create_task(live.http.get(base + hinted))
        r = await reload
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "public, max-age=6"  # 3 target durations
        held = parse_playlist(r.text)
        listed = [p["uri"] for s in held["segments"] for p in s["parts"]]
        assert hinted in listed + [p["uri"] for p in held["open_parts"]], r.text
        if hinted not in listed:  # it was the open segment's part `index`
            assert held["open_parts"][index]["uri"] == hinted, r.text
        else:  # the segment was cut before it: complete, the hinted part opens the next
            assert any(s["uri"] == f"seg-{seq}.m4s" for s in held["segments"]), r.text
        part = await fetched  # held until its file was whole
        assert part.status_code == 200 and set(parts_of(part.content)) == {"moof", "mdat"}
        again = await live.http.get(base + hinted)
        assert again.content == part.content
    # A directive the playlist already holds is answered at once.
    r = await live.http.get(base + f"index.m3u8?_HLS_msn={seq - 1}")
    assert r.status_code == 200 and f"seg-{seq - 1}.m4s" in r.text

    # Bad directives: 400 problems, whatever the live edge.
    progress = recorder.writer.progress
    for query in ("_HLS_msn=x", "_HLS_msn=-1", "_HLS_msn=1.5", "_HLS_part=0",
                  "_HLS_msn=&_HLS_part=1", "_HLS_msn=0&_HLS_part=a",
                  f"_HLS_msn={progress.last_seq + 50}",
                  f"_HLS_msn={progress.last_seq + 1}&_HLS_part={progress.parts + 50}"):
        r = await live.http.get(base + f"index.m3u8?{query}")
        assert r.status_code == 400, (query, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), query
    assert (await live.http.get(base + "part-0-99999.m4s")).status_code == 404

    # A request the playlist does not reach within the hold: 503, never cached. (The hold
    # is 3 target durations; shortened here so the test does not wait 6 s.)
    monkeypatch.setattr(hls_http, "_HOLD_TARGETS", 0.01)
    progress = recorder.writer.progress
    r = await live.http.get(base + f"index.m3u8?_HLS_msn={progress.last_seq + 2}")
    assert r.status_code == 503, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-type"].startswith("application/problem+json")
    monkeypatch.undo()

    assert await publisher.stop() == 200
    await eventually(lambda: stream_id not in live.services.video.sessions, "video ended")
    # Ended: a directive is not held (and not refused): the VOD comes at once, no parts.
    r = await live.http.get(base + f"index.m3u8?_HLS_msn={progress.last_seq + 50}")
    assert r.status_code == 200 and parse_playlist(r.text)["ended"]
    assert r.headers["cache-control"] == "public, max-age=600"


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
