"""Product images without a node: what `prepare_image` takes and refuses, judged by the bytes
(never by a declared type), that it strips metadata and keeps the picture upright, and the
disk store's files."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from checkout.images import (DiskImageStore, ImageLimits, ImageRefused, is_image_name,
                             prepare_image)

LIMITS = ImageLimits(max_bytes=1024 * 1024, max_pixels=1000 * 1000)
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
       b'<rect width="10" height="10"/></svg>')


def picture(fmt: str, size: tuple[int, int] = (40, 20), mode: str = "RGB", **save: object) -> bytes:
    image = Image.new(mode, size, "#e11d48" if mode == "RGB" else 128)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` (its pixel data is a few bytes)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((300, 300), 60).save(buffer, "PNG")
    return buffer.getvalue()


def refused(data: bytes, limits: ImageLimits = LIMITS) -> tuple[int, str]:
    with pytest.raises(ImageRefused) as caught:
        prepare_image(data, limits)
    return caught.value.status, caught.value.kind


@pytest.mark.parametrize(("fmt", "ext", "ctype"), [("JPEG", "jpg", "image/jpeg"),
                                                   ("PNG", "png", "image/png"),
                                                   ("WEBP", "webp", "image/webp")])
def test_jpeg_png_and_webp_are_taken_and_named_by_their_hash(fmt: str, ext: str,
                                                              ctype: str) -> None:
    image = prepare_image(picture(fmt), LIMITS)
    assert (image.content_type, image.width, image.height) == (ctype, 40, 20)
    assert image.name == f"{hashlib.sha256(image.data).hexdigest()}.{ext}"
    assert is_image_name(image.name)
    assert Image.open(io.BytesIO(image.data)).format == fmt
    # The same picture again is the same name: one file, however often it is uploaded.
    assert prepare_image(picture(fmt), LIMITS).name == image.name


@pytest.mark.parametrize(("label", "data", "status", "kind"), [
    ("svg", SVG, 415, "unsupported-image-type"),
    ("gif", picture("GIF", mode="P"), 415, "unsupported-image-type"),
    ("bmp", picture("BMP"), 415, "unsupported-image-type"),
    ("html", b"<html><script>alert(1)</script></html>", 415, "unsupported-image-type"),
    ("empty", b"", 415, "unsupported-image-type"),
    # A JPEG's signature on something that is not one: the decoder, not the name, decides.
    ("jpeg signature, garbage", b"\xff\xd8\xff" + b"\x00" * 200, 422, "invalid-image"),
    ("truncated png", noise_png()[:2000], 422, "invalid-image"),
    ("svg after a png signature", b"\x89PNG\r\n\x1a\n" + SVG, 422, "invalid-image"),
])
def test_anything_else_is_refused_by_its_content(label: str, data: bytes, status: int,
                                                 kind: str) -> None:
    assert refused(data) == (status, kind), label


def test_too_many_bytes_is_413_before_decoding() -> None:
    data = picture("PNG")
    assert refused(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=10**6)) == (
        413, "image-too-large")
    assert prepare_image(data, ImageLimits(max_bytes=len(data), max_pixels=10**6)).width == 40


def test_too_many_pixels_is_422_from_the_header_alone() -> None:
    assert refused(picture("PNG", (40, 20)), ImageLimits(max_pixels=799)) == (
        422, "image-too-many-pixels")
    assert prepare_image(picture("PNG", (40, 20)), ImageLimits(max_pixels=800)).height == 20
    # A decompression bomb: 100,000 x 100,000 claimed in a file of 33 bytes.
    bomb = png_bomb(100_000, 100_000)
    assert len(bomb) < 100
    assert refused(bomb) == (422, "image-too-many-pixels")
    assert refused(bomb, ImageLimits(max_pixels=10**12)) == (422, "image-too-many-pixels")


def test_metadata_is_stripped_and_the_orientation_applied() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Maker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    original = picture("JPEG", (40, 20), exif=exif.tobytes())
    assert b"SpyCam Maker" in original
    image = prepare_image(original, LIMITS)
    assert b"SpyCam Maker" not in image.data and b"Exif" not in image.data
    decoded = Image.open(io.BytesIO(image.data))
    assert dict(decoded.getexif()) == {}
    assert (image.width, image.height) == decoded.size == (20, 40)  # upright now

    text = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    Image.new("RGBA", (8, 8)).save(text, "PNG", pnginfo=info)
    assert b"secret location" not in prepare_image(text.getvalue(), LIMITS).data


def test_an_animation_keeps_its_first_frame_only() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    image = prepare_image(buffer.getvalue(), LIMITS)
    assert getattr(Image.open(io.BytesIO(image.data)), "n_frames", 1) == 1


async def test_the_disk_store_writes_whole_files_once(tmp_path: Path) -> None:
    store = DiskImageStore(tmp_path / "images")
    image = prepare_image(picture("PNG"), LIMITS)
    assert await store.get(image.name) is None
    await store.put(image)
    await store.put(image)  # the same name again: nothing to do
    path = tmp_path / "images" / image.name[:2] / image.name
    assert path.read_bytes() == image.data == await store.get(image.name)
    assert [p.name for p in path.parent.iterdir()] == [image.name]  # no temporary file left
    for name in ("../jwt.secret", "x.png", image.name.replace(".png", ".svg"),
                 image.name.upper()):
        assert await store.get(name) is None
