"""Product images: checked by their content, re-encoded without metadata, named by their
hash, and kept behind a small `ImageStore` (on disk under the node's data dir by default).

Why by content: the declared Content-Type and the file name are the client's word; the
bytes are what a browser will render. Only JPEG, PNG and WebP pass (an SVG can carry
script, a GIF or TIFF is a decoder we do not need to expose). The size is checked before
anything is decoded and the pixel count from the header before the pixels are, so a small
file that would decode to gigabytes (a "decompression bomb") is refused cheaply. Every
image is then decoded and encoded again in its own format: that drops EXIF (GPS position,
camera serial), XMP and text chunks, keeps only the first frame of an animation, and turns
the EXIF orientation into real pixels first so the picture stays upright.

The stored name is the SHA-256 of the re-encoded bytes plus the format's extension, so a
name never changes meaning: it is served as immutable, and the same picture uploaded twice
is one file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps

from checkout.errors import Refused

__all__ = ["ImageLimits", "PreparedImage", "ImageStore", "DiskImageStore", "prepare_image",
           "sniff", "is_image_name", "CONTENT_TYPES", "ImageRefused"]

# extension -> Content-Type; the only formats taken (and so the only ones served)
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_PIL_FORMAT = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_NAME = re.compile(r"[0-9a-f]{64}\.(jpg|png|webp)")
_QUALITY = 90  # JPEG and lossy WebP re-encoding: visually lossless for product photos


class ImageRefused(Refused):
    """An upload that is not an image we take (type, size, pixels, or a broken file)."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 16_777_216  # width x height, e.g. 4096 x 4096


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """Re-encoded bytes and what the catalog records about them."""

    data: bytes
    name: str  # <sha256 hex>.<ext>
    content_type: str
    width: int
    height: int

    @property
    def digest(self) -> str:
        return self.name.split(".", 1)[0]


def is_image_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name))


def sniff(data: bytes) -> str | None:
    """The extension the bytes' signature says (JPEG SOI, PNG's 8-byte signature, RIFF/WEBP),
    or None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def prepare_image(data: bytes, limits: ImageLimits) -> PreparedImage:
    """Check `data` and re-encode it; CPU-bound, so callers run it in a thread.
    Refuses: 413 image-too-large, 415 unsupported-image-type, 422 image-too-many-pixels,
    422 invalid-image."""
    if len(data) > limits.max_bytes:
        raise ImageRefused(413, "image-too-large", f"an image is at most {limits.max_bytes} bytes")
    ext = sniff(data)
    if ext is None:
        raise ImageRefused(415, "unsupported-image-type",
                           "send a JPEG, PNG or WebP image (SVG and other formats are refused)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap is below
            image = Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[ext]])
            width, height = image.size
            if width * height > limits.max_pixels:
                raise ImageRefused(422, "image-too-many-pixels",
                                   f"an image has at most {limits.max_pixels} pixels "
                                   f"(this one: {width}x{height})")
            image.load()
            out, size = _reencode(image, ext)
    except ImageRefused:
        raise
    except Image.DecompressionBombError:
        raise ImageRefused(422, "image-too-many-pixels",
                           f"an image has at most {limits.max_pixels} pixels") from None
    except Exception:  # a decoder fed untrusted bytes: however it fails, the file is at fault
        raise ImageRefused(422, "invalid-image", "the file is damaged or not a whole image") from None
    digest = hashlib.sha256(out).hexdigest()
    return PreparedImage(out, f"{digest}.{ext}", CONTENT_TYPES[ext], *size)


def _reencode(image: Image.Image, ext: str) -> tuple[bytes, tuple[int, int]]:
    icc = image.info.get("icc_profile")  # colour, not metadata: kept so colours stay true
    upright = ImageOps.exif_transpose(image)  # a copy without the orientation tag
    buffer = io.BytesIO()
    extra: dict[str, object] = {"icc_profile": icc} if icc else {}
    if ext == "jpg":
        if upright.mode not in ("RGB", "L"):  # CMYK, YCCK: its profile no longer applies
            upright, extra = upright.convert("RGB"), {}
        upright.save(buffer, "JPEG", quality=_QUALITY, **extra)
    elif ext == "png":
        upright.save(buffer, "PNG", **extra)
    else:
        mode = "RGBA" if "A" in upright.getbands() or "transparency" in upright.info else "RGB"
        upright.convert(mode).save(buffer, "WEBP", quality=_QUALITY, **extra)
    return buffer.getvalue(), upright.size


class ImageStore(Protocol):
    """Where image bytes live, by name (`<sha256>.<ext>`). A name's bytes never change, so
    `put` of a name already there may do nothing."""

    async def put(self, image: PreparedImage) -> None: ...

    async def get(self, name: str) -> bytes | None: ...


class DiskImageStore:
    """Files under one folder, fanned out by the hash's first two characters so no folder
    grows past a few thousand entries; written to a temporary file, fsynced and renamed, so
    a reader never sees half an image and a crash leaves none."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        if not is_image_name(name):
            raise ValueError(f"not an image name: {name!r}")
        return self.root / name[:2] / name

    async def put(self, image: PreparedImage) -> None:
        await asyncio.to_thread(self._write, self._path(image.name), image.data)

    async def get(self, name: str) -> bytes | None:
        if not is_image_name(name):
            return None
        return await asyncio.to_thread(self._read, self._path(name))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
