"""HLS viewers for the HLS load test: lean HTTP clients that poll a live playlist as a
player does, spread over client processes.

Two players:

- `watch_live_parts` (player "ll", the viewer page's hls.js in lowLatencyMode): joins at the
  independent part PART-HOLD-BACK behind the live edge, fetches each new part once, in
  order, then asks for the next part with a blocking reload (`_HLS_msn`/`_HLS_part`: the
  node answers when that part exists, a cache in front collapses the viewers' identical
  reloads), and so on; a 503 (held too long) is retried. Segments are never fetched.
- `watch_live` (player "segments", hls.js without parts): joins three segments behind the
  live edge (liveSyncDurationCount), reloads the playlist every target duration (half of it
  when nothing changed, as hls.js does) with If-None-Match, and fetches each new segment
  once, in order.

Both fetch the init segment once per run, time every media fetch and every plain playlist
fetch (request written to body complete; a held reload's time is the hold, not counted)
into HdrHistograms, and keep the numbers of the files they got (segment sequence numbers,
or part numbers), so the parent can check nobody missed or repeated one.

`HlsFleet` spawns processes of up to `per_process` viewers; each answers `run` (viewers
until an end time on CLOCK_MONOTONIC, one clock for every process on the machine) over a
pipe, exits when told, when the pipe closes, or after `_LIFETIME_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from loadtest.child_procs import answer, run_child, stop_children
from loadtest.histogram import LatencyHistogram
from loadtest.http_client import (ConnectionFailed, HttpConnection, RequestTimeout,
                                  _Protocol, encode_request)

__all__ = ["HlsFleet", "Playlist", "PartRef", "parse_playlist", "watch_live",
           "watch_live_parts", "ViewerLog", "EtagConnection", "LIVE_SYNC_COUNT", "Player"]

log = logging.getLogger(__name__)

LIVE_SYNC_COUNT = 3  # hls.js liveSyncDurationCount: segments behind the live edge
_LIFETIME_S = 3600.0
_PIPE_POLL_S = 1.0
_REQUEST_TIMEOUT_S = 10.0
_ERRORS_KEPT = 3
_NICE = 5
_PART = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="part-([0-9]+)-([0-9]+)\.m4s"'
                   r'(,INDEPENDENT=YES)?')
Player = Literal["ll", "segments"]


@dataclass(frozen=True, slots=True)
class PartRef:
    run: int
    number: int  # over the run
    seq: int  # its segment
    duration: float
    independent: bool
    map: str  # the init segment it needs

    @property
    def uri(self) -> str:
        return f"part-{self.run}-{self.number}.m4s"


@dataclass(frozen=True, slots=True)
class Playlist:
    target_s: float
    media_sequence: int
    segments: list[tuple[int, str]]  # (seq, uri) in order
    maps: dict[int, str]  # seq -> the init segment (EXT-X-MAP) it needs
    ended: bool
    parts: list[PartRef] = field(default_factory=list)  # in order, the open segment's last
    part_hold_back: float = 0.0

    @property
    def open_seq(self) -> int:
        return self.media_sequence + len(self.segments)


def parse_playlist(text: str) -> Playlist:
    """The few tags a player needs from the recorder's media playlist (playlist.py)."""
    target, media_seq, ended, hold_back = 2.0, 0, False, 0.0
    current_map = ""
    segments: list[tuple[int, str]] = []
    maps: dict[int, str] = {}
    parts: list[PartRef] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXT-X-PART:"):
            m = _PART.match(line)
            if m is not None:
                parts.append(PartRef(int(m.group(2)), int(m.group(3)),
                                     media_seq + len(segments), float(m.group(1)),
                                     m.group(4) is not None, current_map))
        elif line.startswith("#EXT-X-SERVER-CONTROL:") and "PART-HOLD-BACK=" in line:
            hold_back = float(line.split("PART-HOLD-BACK=", 1)[1].split(",", 1)[0])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            media_seq = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MAP:"):
            current_map = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif line and not line.startswith("#"):
            seq = media_seq + len(segments)
            segments.append((seq, line))
            maps[seq] = current_map
    return Playlist(target, media_seq, segments, maps, ended, parts, hold_back)


class _EtagProtocol(_Protocol):
    """Also reads the reply's ETag (httptools calls on_header only where it is defined)."""

    etag: str | None = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.etag = None

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"etag":
            self.etag = value.decode("latin-1")


class EtagConnection(HttpConnection):
    """A keep-alive connection whose `get` also returns the reply's ETag."""

    protocol_class = _EtagProtocol

    async def get(self, raw: bytes, timeout_s: float = _REQUEST_TIMEOUT_S
                  ) -> tuple[int, bytes, str | None]:
        await self.open()
        protocol = self.protocol
        reply = await self.request(raw, timeout_s)
        etag = protocol.etag if isinstance(protocol, _EtagProtocol) else None
        return reply.status, reply.body, etag


@dataclass(eq=False)
class ViewerLog:
    """What one viewer got."""

    segments: list[int] = field(default_factory=list)  # seqs (or part numbers), fetch order
    inits: int = 0
    playlists: int = 0
    not_modified: int = 0  # playlist reloads answered 304
    bytes: int = 0
    errors: int = 0
    first_error: str = ""

    def fail(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why

    def summary(self) -> dict[str, Any]:
        seqs = self.segments
        contiguous = all(b == a + 1 for a, b in zip(seqs, seqs[1:]))
        return {"first": seqs[0] if seqs else None, "last": seqs[-1] if seqs else None,
                "count": len(seqs), "in_order": contiguous, "inits": self.inits,
                "playlists": self.playlists, "not_modified": self.not_modified,
                "bytes": self.bytes, "errors": self.errors, "first_error": self.first_error}


async def watch_live(conn: EtagConnection, host: str, prefix: str, end_at: float,
                     seg_hist: LatencyHistogram, playlist_hist: LatencyHistogram,
                     got: ViewerLog, on_segment: Any = None) -> None:
    """Play `prefix`index.m3u8 as a player would until `end_at` (time.monotonic).
    `on_segment(seq, init_bytes, segment_bytes, fetched_at, playlist)`, if given, is awaited
    after each segment arrives (the glass-to-glass viewer decodes there)."""
    playlist_path = prefix + "index.m3u8"
    etag: str | None = None
    next_seq: int | None = None
    init_uri, init_data = "", b""
    while time.monotonic() < end_at:
        headers = {"If-None-Match": etag} if etag else {}
        t0 = time.monotonic()
        try:
            status, body, new_etag = await conn.get(encode_request("GET", playlist_path, host,
                                                                   headers))
        except (ConnectionFailed, RequestTimeout) as exc:
            got.fail(f"playlist: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)
            continue
        playlist_hist.record(time.monotonic() - t0)
        got.playlists += 1
        changed = False
        target_s = 2.0
        if status == 304:
            got.not_modified += 1
        elif status != 200:
            got.fail(f"playlist: HTTP {status}")
        else:
            etag = new_etag
            playlist = parse_playlist(body.decode())
            target_s = playlist.target_s
            listed = playlist.segments
            if next_seq is None and listed:  # join LIVE_SYNC_COUNT segments behind the edge
                next_seq = listed[max(0, len(listed) - LIVE_SYNC_COUNT)][0]
            for seq, uri in listed:
                if next_seq is None or seq < next_seq or time.monotonic() >= end_at:
                    continue
                if seq > next_seq:  # it fell out of the window before we got it
                    got.fail(f"segment {next_seq} missed")
                wanted = playlist.maps[seq]
                if wanted != init_uri:
                    data = await _fetch(conn, host, prefix + wanted, None, got)
                    if data is None:
                        break
                    init_uri, init_data = wanted, data
                    got.inits += 1
                data = await _fetch(conn, host, prefix + uri, seg_hist, got)
                if data is None:
                    break
                fetched_at = time.monotonic()
                got.segments.append(seq)
                next_seq, changed = seq + 1, True
                if on_segment is not None:
                    await on_segment(seq, init_data, data, fetched_at, playlist)
        # hls.js: reload after the target duration, half of it when nothing was new
        delay = target_s if changed else target_s / 2
        await asyncio.sleep(max(0.0, min(delay, end_at - time.monotonic())))


def _join(playlist: Playlist) -> PartRef:
    """hls.js's start in low-latency mode: PART-HOLD-BACK behind the end of the last part,
    at the independent part at or before that moment."""
    parts = playlist.parts
    behind, i = 0.0, len(parts)
    while i > 0 and behind < playlist.part_hold_back:
        i -= 1
        behind += parts[i].duration
    while i > 0 and not parts[i].independent:
        i -= 1
    return parts[i]


async def watch_live_parts(conn: EtagConnection, host: str, prefix: str, end_at: float,
                           part_hist: LatencyHistogram, playlist_hist: LatencyHistogram,
                           got: ViewerLog, on_part: Any = None) -> None:
    """Play `prefix`index.m3u8 part by part as hls.js in low-latency mode does, until
    `end_at`. `on_part(part, init_bytes, part_bytes, fetched_at, joined)`, if given, is
    awaited after each part arrives (`joined`: fetched at the join, old already)."""
    playlist_path = prefix + "index.m3u8"
    path = playlist_path
    following: tuple[int, int] | None = None  # (run, number) of the next part to fetch
    init_uri, init_data = "", b""
    joined = True
    while time.monotonic() < end_at:
        t0 = time.monotonic()
        try:
            status, body, _ = await conn.get(encode_request("GET", path, host))
        except (ConnectionFailed, RequestTimeout) as exc:
            got.fail(f"playlist: {type(exc).__name__}: {exc}")
            path = playlist_path
            await asyncio.sleep(1.0)
            continue
        if path == playlist_path:
            playlist_hist.record(time.monotonic() - t0)
        got.playlists += 1
        if status == 503:  # held past three target durations: ask again
            continue
        if status != 200:
            got.fail(f"playlist: HTTP {status}")
            path = playlist_path
            await asyncio.sleep(0.5)
            continue
        playlist = parse_playlist(body.decode())
        if playlist.ended:
            return
        if not playlist.parts:
            got.fail("playlist: no parts")
            path = playlist_path
            await asyncio.sleep(playlist.target_s / 2)
            continue
        if following is None:
            start = _join(playlist)
            following = (start.run, start.number)
        runs = {p.run for p in playlist.parts}
        if following[0] not in runs and max(runs) > following[0]:  # a new run: its start
            start = next(p for p in playlist.parts if p.run > following[0])
            following = (start.run, start.number)
        todo = [p for p in playlist.parts
                if p.run == following[0] and p.number >= following[1]]
        if todo and todo[0].number > following[1]:
            got.fail(f"part {following[1]} missed")
        for part in todo:
            if time.monotonic() >= end_at:
                return
            if part.map != init_uri:
                data = await _fetch(conn, host, prefix + part.map, None, got)
                if data is None:
                    break
                init_uri, init_data = part.map, data
                got.inits += 1
            data = await _fetch(conn, host, prefix + part.uri, part_hist, got)
            if data is None:
                break
            fetched_at = time.monotonic()
            got.segments.append(part.number)
            following = (part.run, part.number + 1)
            if on_part is not None:
                await on_part(part, init_data, data, fetched_at, joined)
        joined = False
        # The next part: the open segment's next one (the node holds the request until
        # it exists, or answers at once with the segment complete and the part after).
        opened = sum(1 for p in playlist.parts if p.seq == playlist.open_seq)
        path = f"{playlist_path}?_HLS_msn={playlist.open_seq}&_HLS_part={opened}"


async def _fetch(conn: EtagConnection, host: str, path: str, hist: LatencyHistogram | None,
                 got: ViewerLog) -> bytes | None:
    t0 = time.monotonic()
    try:
        status, body, _ = await conn.get(encode_request("GET", path, host))
    except (ConnectionFailed, RequestTimeout) as exc:
        got.fail(f"{path.rsplit('/', 1)[-1]}: {type(exc).__name__}: {exc}")
        return None
    if status != 200:
        got.fail(f"{path.rsplit('/', 1)[-1]}: HTTP {status}")
        return None
    if hist is not None:
        hist.record(time.monotonic() - t0)
    got.bytes += len(body)
    return body


async def run_viewers(host: str, port: int, prefix: str, count: int, start_at: float,
                      spread_s: float, end_at: float, player: Player = "ll") -> dict[str, Any]:
    """`count` viewers, each joining at a random moment of [start_at, start_at + spread_s)
    (an audience is not in step) on its own keep-alive connection, until `end_at`."""
    seg_hist, playlist_hist = LatencyHistogram(), LatencyHistogram()
    logs = [ViewerLog() for _ in range(count)]
    authority = f"{host}:{port}"

    async def one(got: ViewerLog) -> None:
        await asyncio.sleep(max(0.0, start_at + random.random() * spread_s - time.monotonic()))
        conn = EtagConnection(host, port)
        try:
            watch = watch_live_parts if player == "ll" else watch_live
            await watch(conn, authority, prefix, end_at, seg_hist, playlist_hist, got)
        except Exception as exc:  # one viewer's bug is reported, not the fleet's end
            got.fail(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    await asyncio.gather(*(one(g) for g in logs))
    return {"segment_hist": seg_hist.encode(), "playlist_hist": playlist_hist.encode(),
            "viewers": [g.summary() for g in logs]}


@dataclass(eq=False)
class _Child:
    proc: multiprocessing.process.BaseProcess
    pipe: multiprocessing.connection.Connection


class HlsFleet:
    """Client processes of HLS viewers; `async with` ends them all."""

    def __init__(self, per_process: int) -> None:
        self.per_process = per_process
        self._children: list[_Child] = []

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c.proc.pid is not None]

    def spawn_for(self, count: int) -> None:
        """Start the processes `count` viewers need now: a process starting mid-show costs a
        burst of CPU (imports) that on two cores can starve the publisher for seconds."""
        while len(self._children) < -(-count // self.per_process):
            self._spawn()

    async def run(self, host: str, port: int, prefix: str, count: int, start_at: float,
                  spread_s: float, end_at: float, player: Player = "ll") -> list[dict[str, Any]]:
        """`count` viewers spread over as many processes as needed, until `end_at`."""
        needed = -(-count // self.per_process)
        while len(self._children) < needed:
            self._spawn()
        shares = [count // needed + (1 if i < count % needed else 0) for i in range(needed)]
        args = {"host": host, "port": port, "prefix": prefix, "start_at": start_at,
                "spread_s": spread_s, "end_at": end_at, "player": player}
        timeout = end_at - time.monotonic() + 60
        return list(await asyncio.gather(*(
            self._call(child, {**args, "count": share}, timeout)
            for child, share in zip(self._children, shares))))

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=child_main, args=(theirs,), name="loadtest-hls-viewers",
                           daemon=True)
        proc.start()
        theirs.close()
        self._children.append(_Child(proc, ours))

    @staticmethod
    async def _call(child: _Child, args: dict[str, Any], timeout_s: float) -> Any:
        child.pipe.send(("run", args))
        return await answer(child.pipe, timeout_s, f"HLS viewer process {child.proc.pid}")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        children, self._children = self._children, []
        await stop_children([(c.proc, c.pipe) for c in children], 30)


async def _main(pipe: multiprocessing.connection.Connection) -> None:
    deadline = time.monotonic() + _LIFETIME_S
    while time.monotonic() < deadline:
        if not await asyncio.to_thread(pipe.poll, _PIPE_POLL_S):
            continue
        try:
            op, args = pipe.recv()
        except EOFError:  # the parent is gone
            return
        if op == "exit":
            return
        if op != "run":
            pipe.send(("error", f"unknown command {op!r}"))
            continue
        pipe.send(("ok", await run_viewers(**args)))
    log.warning("HLS viewer process lifetime over; exiting")


def child_main(pipe: multiprocessing.connection.Connection) -> None:
    # The load generator yields to what it measures: the node and the publisher's camera
    # share these cores, and a camera starved for 3 s is a lost publisher to the node.
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_child(pipe, lambda: _main(pipe))
