"""The recording's parts without a node: the cutter and the playlist (pure), the fMP4 box
reader, the muxing writer on a real x264 encode with a gap (two runs), and retention."""

from __future__ import annotations

import fractions
import io
import os
import queue
import re
import time
from pathlib import Path

import av
import pytest

from live.video.fmp4 import BoxReader, fragment_time
from live.video.playlist import Part, Segment, is_file_name, program_date_time, render
from live.video.recorder import _END, INDEX, PLAYLIST, RecordingConfig, _Item, _Writer
from live.video.recordings import Recordings
from live.video.segmenter import Cut, SegmentCutter

S = 90_000  # ticks per second
FRAME = S // 30


def cutter() -> SegmentCutter:
    return SegmentCutter(target=2 * S, tolerance=S // 4, gap=S)


def test_the_cutter_starts_on_a_keyframe_and_cuts_at_the_target() -> None:
    c = cutter()
    assert c.video(0, False) is Cut.SKIP and c.wants_keyframe()  # asks once
    assert not c.wants_keyframe()
    assert c.video(FRAME, True) is Cut.RUN
    assert c.video(2 * FRAME, True) is Cut.KEEP  # a viewer's keyframe mid-segment
    assert c.video(S, False) is Cut.KEEP and not c.wants_keyframe()
    assert c.video(FRAME + 2 * S - S // 4, True) is Cut.SEGMENT  # early by the tolerance
    t = FRAME + 2 * S - S // 4
    for step in range(1, 4):
        assert c.video(t + step * S // 2, False) is Cut.KEEP and not c.wants_keyframe()
    assert c.video(t + 2 * S, False) is Cut.KEEP and c.wants_keyframe()  # overdue: ask
    assert not c.wants_keyframe()
    assert c.video(t + 2 * S + FRAME, True) is Cut.SEGMENT


def test_a_gap_starts_a_new_run_and_a_lost_packet_a_new_segment() -> None:
    c = cutter()
    c.video(0, True)
    assert c.video(FRAME, False) is Cut.KEEP
    assert c.video(FRAME + 2 * S, False) is Cut.SKIP  # after a gap: wait for a keyframe
    assert c.wants_keyframe()
    assert c.video(FRAME * 2 + 2 * S, True) is Cut.RUN
    c.lost()
    assert c.video(FRAME * 3 + 2 * S, False) is Cut.SKIP
    assert c.video(FRAME * 4 + 2 * S, True) is Cut.SEGMENT
    assert c.video(FRAME * 4 + 2 * S, False) is Cut.SKIP  # never backwards


def segments() -> list[Segment]:
    origin = 1_700_000_000_000
    return [Segment(0, 0, origin, 90, 2 * S), Segment(1, 0, origin, 90 + 2 * S, 2 * S),
            Segment(2, 1, origin, 10 * S, S + S // 2), Segment(3, 1, origin, 11 * S + S // 2, 2 * S)]


def test_the_vod_playlist_marks_runs_and_dates_every_segment() -> None:
    text = render(segments(), target_s=2.0, ended=True)
    assert text.splitlines()[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:VOD"]
    assert "#EXT-X-TARGETDURATION:2" in text and text.endswith("#EXT-X-ENDLIST\n")
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.count('#EXT-X-MAP:URI="init-0.mp4"') == 1
    assert text.count('#EXT-X-MAP:URI="init-1.mp4"') == 1
    assert "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.001Z" in text  # 90 ticks = 1 ms
    assert "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:31.500Z" in text
    assert text.count("#EXT-X-DATERANGE") == 1  # one clock: one origin
    assert "#EXTINF:1.50000,\nseg-2.m4s" in text


def test_the_live_playlist_is_a_window_that_counts_what_it_left_out() -> None:
    text = render(segments(), target_s=2.0, ended=False, window=1)
    assert "#EXT-X-ENDLIST" not in text and "PLAYLIST-TYPE" not in text
    assert "#EXT-X-MEDIA-SEQUENCE:3" in text
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in text  # the one before seg-2 left the window
    assert '#EXT-X-MAP:URI="init-1.mp4"' in text and "#EXT-X-DISCONTINUITY\n" not in text
    assert text.rstrip().endswith("seg-3.m4s")
    assert "#EXT-X-MEDIA-SEQUENCE:0" in render([], target_s=2.0, ended=False)


def test_dates_and_names() -> None:
    assert program_date_time(0, 0) == "1970-01-01T00:00:00.000Z"
    assert program_date_time(999, 89) == "1970-01-01T00:00:00.999Z"  # truncated, < 1 ms
    for good in ("init-0.mp4", "seg-12.m4s"):
        assert is_file_name(good)
    for bad in ("../seg-1.m4s", "seg-1.m4s.part", "index.m3u8", "segments.jsonl", "seg-.m4s",
                "seg-1.m4s/", "init-1.mp4\n", "SEG-1.m4s"):
        assert not is_file_name(bad)


def test_the_box_reader_takes_any_chunking() -> None:
    boxes = b"\x00\x00\x00\x0cftypabcd" + b"\x00\x00\x00\x08free"
    reader = BoxReader()
    out = [b for i in range(len(boxes)) for b in reader.feed(boxes[i:i + 1])]
    assert [k for k, _ in out] == ["ftyp", "free"] and reader.pending == 0


def encode_show(gap_after: int, frames: int) -> list[tuple[int, bool, av.Packet]]:
    """A real x264 encode like the shared encoder's, with a 2 s hole in media time."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 180, "yuv420p"
    codec.time_base = fractions.Fraction(1, S)
    codec.framerate = fractions.Fraction(30, 1)
    codec.gop_size = 60
    codec.options = {"preset": "ultrafast", "tune": "zerolatency", "repeat-headers": "1"}
    codec.open()
    base = [os.urandom(320 * 180), os.urandom(160 * 90), os.urandom(160 * 90)]
    c = cutter()
    out = []
    force = False
    for i in range(frames):
        frame = av.VideoFrame(320, 180, "yuv420p")
        for plane, data in zip(frame.planes, base):
            plane.update((data[i * 4:] + data[:i * 4])[:plane.buffer_size])
        frame.pts = 12345 + i * FRAME + (2 * S if i >= gap_after else 0)
        frame.time_base = codec.time_base
        frame.pict_type = (av.video.frame.PictureType.I if force
                           else av.video.frame.PictureType.NONE)
        for packet in codec.encode(frame):
            out.append((c.video(int(packet.pts), packet.is_keyframe), packet))
        force = c.wants_keyframe()
    return [(cut, p.is_keyframe, p) for cut, p in out]


def test_the_writer_cuts_decodable_segments_and_starts_a_run_after_a_gap(tmp_path: Path) -> None:
    folder = tmp_path / "s_show"
    writer = _Writer(folder, 1_700_000_000_000, RecordingConfig(tmp_path), 320, 180)
    items: queue.Queue[_Item | object] = queue.Queue()
    for cut, _, packet in encode_show(gap_after=100, frames=190):
        if cut is not Cut.SKIP:
            items.put(_Item("video", cut, int(packet.pts), packet))
    items.put(_END)
    writer.run(items)
    assert writer.failures == 0
    runs = sorted({s.run for s in writer.segments})
    assert runs == [0, 1] and len(writer.segments) >= 4
    text = (folder / PLAYLIST).read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.endswith("#EXT-X-ENDLIST\n")
    assert len((folder / INDEX).read_text().splitlines()) == len(writer.segments)
    decoded = 0
    for before, segment in zip([None, *writer.segments], writer.segments):
        init = (folder / f"init-{segment.run}.mp4").read_bytes()
        with av.open(io.BytesIO(init + (folder / segment.name).read_bytes())) as container:
            pts = [int(f.pts) for f in container.decode(video=0)]
        assert pts[0] == segment.start and pts[-1] < segment.start + segment.duration
        if before is not None and before.run == segment.run:
            assert before.start + before.duration == segment.start  # continuous
        decoded += len(pts)
        assert 1.5 * S <= segment.duration <= 2.6 * S or segment is writer.segments[-1] \
            or writer.segments[segment.seq + 1].run != segment.run
    assert decoded == writer.video_packets
    with open(folder / (writer.segments[0].name), "rb") as f:
        moof = BoxReader().feed(f.read())[0][1]
    timing = fragment_time(moof, 1)
    assert timing is not None and timing.start == writer.segments[0].start


async def test_retention_deletes_ended_recordings_past_their_time(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path, retention_days=1)
    for name, ended, age_days in (("s_old", True, 2), ("s_new", True, 0), ("s_live", False, 2)):
        (tmp_path / name).mkdir()
        playlist = tmp_path / name / PLAYLIST
        playlist.write_text("#EXTM3U\n" + ("#EXT-X-ENDLIST\n" if ended else ""))
        then = time.time() - age_days * 86400
        os.utime(playlist, (then, then))
    told: list[str] = []

    async def deleted(stream_id: str) -> None:  # the node clears the stream's `recorded`
        told.append(stream_id)
    recordings.on_deleted = deleted
    assert await recordings.sweep() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_live", "s_new"]
    assert told == ["s_old"]
    assert Recordings(tmp_path, retention_days=0).expired(time.time() + 10**9) == []


@pytest.mark.parametrize("name", ["../x", "index.m3u8.part", "segments.jsonl"])
def test_only_recorder_files_are_read(tmp_path: Path, name: str) -> None:
    (tmp_path / "s_a").mkdir()
    (tmp_path / "s_a" / "segments.jsonl").write_text("{}")
    assert Recordings(tmp_path, 0).read("s_a", name) is None


def test_a_new_session_continues_the_recording_with_a_new_run(tmp_path: Path) -> None:
    """A node restarted mid-show: the next session's writer appends to the same recording,
    numbering on, as a new run (its own init, a discontinuity), past a line cut short."""
    folder = tmp_path / "s_show"
    packets = [(cut, p) for cut, _, p in encode_show(gap_after=10_000, frames=70)]
    for session in range(2):
        writer = _Writer(folder, 1_700_000_000_000 + session, RecordingConfig(tmp_path), 320, 180)
        items: queue.Queue[_Item | object] = queue.Queue()
        for cut, packet in packets:
            if cut is not Cut.SKIP:
                items.put(_Item("video", cut, int(packet.pts), packet))
        items.put(_END)
        writer.run(items)
        if session == 0:
            with open(folder / INDEX, "ab") as index:
                index.write(b'{"seq": 9')  # a crash in the middle of a line
    assert [s.run for s in writer.segments] == [0, 0, 1, 1]
    assert [s.seq for s in writer.segments] == [0, 1, 2, 3]
    assert writer.failures == 0
    text = (folder / PLAYLIST).read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.count("#EXT-X-DATERANGE") == 2
    assert len((folder / INDEX).read_text().splitlines()) == 4


def test_the_live_playlist_lists_the_last_parts_and_hints_the_next() -> None:
    origin = 1_700_000_000_000
    done = segments()[:2]
    parts = [Part(seq, i, 0, origin, 90 + seq * 2 * S + i * S // 2, S // 2, i == 0, seq * 4 + i)
             for seq in range(3) for i in range(4 if seq < 2 else 2)]
    text = render(done, target_s=2.0, ended=False, parts=parts, part_target_s=0.5,
                  part_segments=1)
    lines = text.splitlines()
    assert lines[:5] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:2",
                         "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500",
                         "#EXT-X-PART-INF:PART-TARGET=0.500"]
    assert '"part-0-3.m4s"' not in text  # segment 0 is older than part_segments
    assert '#EXT-X-PART:DURATION=0.50000,URI="part-0-4.m4s",INDEPENDENT=YES' in lines
    assert '#EXT-X-PART:DURATION=0.50000,URI="part-0-5.m4s"' in lines
    # The open segment: its date, its parts after the last segment, then the next part.
    assert lines[-4:] == ["#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.001Z",
                          '#EXT-X-PART:DURATION=0.50000,URI="part-0-8.m4s",INDEPENDENT=YES',
                          '#EXT-X-PART:DURATION=0.50000,URI="part-0-9.m4s"',
                          '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-0-10.m4s"']
    # A part longer than the target raises PART-TARGET (and the hold-back) to fit it.
    long = [*parts, Part(2, 2, 0, origin, 0, S * 3 // 4 + 1, False, 10)]
    text = render(done, target_s=2.0, ended=False, parts=long, part_target_s=0.5)
    assert "#EXT-X-PART-INF:PART-TARGET=0.751" in text and "PART-HOLD-BACK=2.253" in text
    # Ended: a VOD, no part lines at all.
    vod = render(done, target_s=2.0, ended=True, parts=parts, part_target_s=0.5)
    assert "PART" not in vod and "SERVER-CONTROL" not in vod and "PRELOAD" not in vod
    assert is_file_name("part-0-12.m4s") and not is_file_name("part-12.m4s")
    assert not is_file_name("part-0-1-2.m4s")


def test_the_writer_publishes_each_segment_as_parts_first(tmp_path: Path) -> None:
    """Every fragment is a part file as soon as it is muxed; a segment's parts, in order,
    are its bytes exactly; each part decodes after the ones before it; the first part of
    a segment starts on a keyframe; the playlist listed each part as it came."""
    folder = tmp_path / "s_show"
    config = RecordingConfig(tmp_path, live_window=2)
    writer = _Writer(folder, 1_700_000_000_000, config, 320, 180)
    seen: dict[str, bytes] = {}
    playlists: list[str] = []
    of_segment: dict[int, list[str]] = {}

    def progressed() -> None:  # in the writer's thread, after each playlist write
        playlists.append((folder / PLAYLIST).read_text())
        for part in writer.parts:
            if part.name not in seen:
                seen[part.name] = (folder / part.name).read_bytes()
                of_segment.setdefault(part.seq, []).append(part.name)
    writer.on_progress = progressed
    items: queue.Queue[_Item | object] = queue.Queue()
    for cut, _, packet in encode_show(gap_after=10_000, frames=200):
        if cut is not Cut.SKIP:
            items.put(_Item("video", cut, int(packet.pts), packet))
    items.put(_END)
    writer.run(items)
    assert writer.failures == 0 and len(writer.segments) >= 3
    # The last parts stay (players may still fetch them); older ones left with the window.
    kept = sorted(p.name for p in folder.glob("part-*"))
    assert kept and kept == sorted(n for n in seen if n not in of_segment[0])
    assert "#EXT-X-PART" not in (folder / PLAYLIST).read_text()
    init = (folder / "init-0.mp4").read_bytes()
    for segment in writer.segments:
        names = of_segment[segment.seq]
        assert len(names) >= 3 or segment is writer.segments[-1], names
        assert b"".join(seen[n] for n in names) == (folder / segment.name).read_bytes()
        decoded: list[int] = []
        for count in range(1, len(names) + 1):
            data = init + b"".join(seen[n] for n in names[:count])
            with av.open(io.BytesIO(data)) as container:
                frames = list(container.decode(video=0))
            assert len(frames) > len(decoded)  # the new part adds pictures
            decoded = [int(f.pts) for f in frames]
            if count == 1:
                assert frames[0].key_frame and decoded[0] == segment.start
        assert decoded[-1] < segment.start + segment.duration
    # Parts as listed: under PART-TARGET, summing to their segment's EXTINF.
    listed: dict[str, float] = {}
    assert playlists[-1].endswith("#EXT-X-ENDLIST\n")
    for text in playlists[:-1]:
        target = float(text.split("#EXT-X-PART-INF:PART-TARGET=")[1].split("\n")[0])
        assert target == config.part_s
        for duration, name in re.findall(r'#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)"', text):
            assert float(duration) <= target
            listed[name] = float(duration)
        hint = re.findall(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', text)
        assert len(hint) == 1 and hint[0] not in listed
    for segment in writer.segments:
        mine = [listed[n] for n in of_segment[segment.seq]]
        assert abs(sum(mine) - segment.duration / S) < 0.0001 * len(mine)


def encode_sound(start: int, seconds: float) -> list[av.Packet]:
    """Opus packets (48 kHz, 20 ms) like the shared audio encoder's, from `start` (48 kHz)."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48_000, "stereo", "s16"
    codec.time_base = fractions.Fraction(1, 48_000)
    codec.open()
    out = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(bytes(960 * 4))
        frame.sample_rate, frame.pts = 48_000, start + i * 960
        out += codec.encode(frame)
    return out


@pytest.mark.parametrize("frames", [130, 133])  # 133: the last fragment is one picture
def test_a_run_ends_with_its_last_picture_not_with_the_sound_after_it(tmp_path: Path,
                                                                     frames: int) -> None:
    """The sound arrives ahead of the (encoded, so later) pictures; when the show stops,
    sound past the last picture is not recorded: the run's last segment ends where its
    EXTINF says on every track (a muxed MSE SourceBuffer, once ended, is buffered to its
    longest track's end), the others at most an audio frame past it (the next continues);
    the last picture is recorded even alone in its fragment (it has a duration)."""
    folder = tmp_path / "s_show"
    writer = _Writer(folder, 1_700_000_000_000, RecordingConfig(tmp_path), 320, 180)
    pictures = [(c, p) for c, _, p in encode_show(gap_after=10_000, frames=frames)
                if c is not Cut.SKIP]
    first = int(pictures[0][1].pts)
    sound = encode_sound(first * 48_000 // S, frames / 30 + 0.3)  # 0.3 s past the pictures
    lag = 9_000  # the pictures come 0.1 s of media time after the sound
    items: queue.Queue[_Item | object] = queue.Queue()
    for cut, packet in pictures:
        while sound and int(sound[0].pts) * S < (int(packet.pts) + lag) * 48_000:
            audio = sound.pop(0)
            items.put(_Item("audio", Cut.KEEP, int(audio.pts), audio))
        items.put(_Item("video", cut, int(packet.pts), packet, audio=True))
    for audio in sound:
        items.put(_Item("audio", Cut.KEEP, int(audio.pts), audio))
    items.put(_END)
    writer.run(items)
    assert writer.failures == 0 and writer.audio and len(writer.segments) >= 2
    init = (folder / "init-0.mp4").read_bytes()
    decoded = 0
    for segment in writer.segments:
        with av.open(io.BytesIO(init + (folder / segment.name).read_bytes())) as container:
            ends = [(p.pts + p.duration) * p.time_base for p in container.demux()
                    if p.pts is not None]
        over = 0 if segment is writer.segments[-1] else fractions.Fraction(1, 50)
        assert ends and max(ends) <= fractions.Fraction(segment.start + segment.duration, S) + over
        with av.open(io.BytesIO(init + (folder / segment.name).read_bytes())) as container:
            decoded += len(list(container.decode(video=0)))
    assert decoded == writer.video_packets == len(pictures)  # the last picture too
