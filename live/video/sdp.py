"""What an SDP offer must hold before aiortc sees it (no I/O).

aiortc raises assorted exceptions on malformed SDP, and accepts offers that can never work
(a viewer offering no codec we send). Checking here turns each of those into a 400 with a
sentence that says what is wrong, and keeps oversized or binary bodies away from the parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from checkout.errors import LivecartError

__all__ = ["Role", "OfferSummary", "SdpError", "check_offer", "MAX_SDP_BYTES", "MAX_MEDIA_SECTIONS"]

MAX_SDP_BYTES = 32 * 1024  # a browser offer with audio, video and data is 4-8 KiB
MAX_MEDIA_SECTIONS = 8

_MEDIA = re.compile(r"^m=(\w+) (\d+) (\S+)(?: (.*))?$")
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([\w-]+)/", re.IGNORECASE)
_FINGERPRINT = re.compile(r"^a=fingerprint:(sha-1|sha-224|sha-256|sha-384|sha-512) "
                          r"[0-9A-F]{2}(:[0-9A-F]{2}){15,63}$", re.IGNORECASE)
_DIRECTIONS = {"sendrecv", "sendonly", "recvonly", "inactive"}


class Role(StrEnum):
    PUBLISHER = "publisher"  # WHIP: the offer sends media to us
    VIEWER = "viewer"  # WHEP: the offer receives media from us


class SdpError(LivecartError, ValueError):
    """The offer cannot be used; the message is meant for the client."""


class _Section(TypedDict):
    """One media (m=) section, as far as the checks read it."""

    kind: str
    direction: str
    codecs: set[str]
    port: int


@dataclass(frozen=True, slots=True)
class OfferSummary:
    audio: bool  # an audio section in the direction this role needs
    video: bool
    data_channel: bool  # an m=application section (SCTP data channels)
    video_codecs: frozenset[str]  # upper-case codec names in the video section(s)


def check_offer(raw: bytes, role: Role) -> tuple[str, OfferSummary]:
    """Decode and check an offer; returns the text and what it asks for, or raises SdpError."""
    if len(raw) > MAX_SDP_BYTES:
        raise SdpError(f"the offer is over {MAX_SDP_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("the offer is not UTF-8 text") from None
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("an SDP offer starts with v=0")
    if not any(line.startswith("o=") for line in lines):
        raise SdpError("the offer has no origin (o=) line")
    sections: list[_Section] = []
    for line in lines:
        if "\x00" in line:
            raise SdpError("the offer contains a NUL byte")
        if line.startswith("m="):
            match = _MEDIA.match(line)
            if match is None:
                raise SdpError(f"malformed media line: {line[:80]!r}")
            sections.append({"kind": match.group(1), "direction": "sendrecv", "codecs": set(),
                             "port": int(match.group(2))})
        elif sections and line.startswith("a="):
            attr = line[2:]
            if attr in _DIRECTIONS:
                sections[-1]["direction"] = attr
            rtpmap = _RTPMAP.match(line)
            if rtpmap is not None:
                sections[-1]["codecs"].add(rtpmap.group(2).upper())
    if not sections:
        raise SdpError("the offer has no media (m=) section")
    if len(sections) > MAX_MEDIA_SECTIONS:
        raise SdpError(f"the offer has over {MAX_MEDIA_SECTIONS} media sections")
    fingerprints = [line for line in lines if line.startswith("a=fingerprint:")]
    if not fingerprints:
        raise SdpError("the offer has no DTLS fingerprint")
    if not all(_FINGERPRINT.match(line) for line in fingerprints):
        raise SdpError("a DTLS fingerprint is malformed (want e.g. sha-256 AB:CD:...)")
    if not any(line.startswith("a=ice-ufrag:") for line in lines):
        raise SdpError("the offer has no ICE credentials (a=ice-ufrag)")

    wanted = {"sendonly", "sendrecv"} if role is Role.PUBLISHER else {"recvonly", "sendrecv"}
    media = [s for s in sections if s["kind"] in ("audio", "video") and s["port"] != 0]
    usable = [s for s in media if s["direction"] in wanted]
    video_codecs: set[str] = set()
    for section in usable:
        if section["kind"] == "video":
            video_codecs |= section["codecs"]
    summary = OfferSummary(
        audio=any(s["kind"] == "audio" for s in usable),
        video=any(s["kind"] == "video" for s in usable),
        data_channel=any(s["kind"] == "application" for s in sections),
        video_codecs=frozenset(video_codecs))
    if role is Role.PUBLISHER:
        if not summary.video:
            raise SdpError("a WHIP offer must send video (an m=video section, sendonly)")
        if not video_codecs & {"H264", "VP8"}:
            raise SdpError("the offer's video has neither H264 nor VP8")
    else:
        if not (summary.video or summary.audio):
            raise SdpError("a WHEP offer must receive audio or video (recvonly sections)")
        if summary.video and "H264" not in video_codecs:
            raise SdpError("streams are sent as H264; the offer's video does not accept it")
    return text, summary
