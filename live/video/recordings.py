"""The node's recordings on disk: one folder per stream under the recordings root, what the
HLS routes may read from it, deleting one, and the retention pass.

Only names the recorder writes are ever opened (playlist.is_file_name, the stream id
checked by the caller), so a request cannot reach outside a stream's folder.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Protocol

from checkout.tasks import repeat, stop_task
from live.video.playlist import is_file_name
from live.video.recorder import INDEX, PLAYLIST

__all__ = ["Recordings", "RecordedFile", "Archive"]

log = logging.getLogger(__name__)

_ENDLIST = b"#EXT-X-ENDLIST"


@dataclass(frozen=True, slots=True)
class RecordedFile:
    data: bytes
    mtime: float


class Archive(Protocol):
    """Where ended recordings go when not kept on the disk (recordings_s3.py); sync,
    called from worker threads."""

    def upload(self, stream_id: str, folder: Path) -> int: ...

    def read(self, stream_id: str, name: str) -> RecordedFile | None: ...

    def delete(self, stream_id: str) -> bool: ...


class Recordings:
    def __init__(self, root: Path, retention_days: float, sweep_interval_s: float = 3600.0,
                 archive: Archive | None = None) -> None:
        self.root = root
        self.archive = archive
        self.retention_days = retention_days
        self._interval = sweep_interval_s
        self._task: asyncio.Task[None] | None = None
        self._uploads: set[asyncio.Task[None]] = set()
        self.uploading: set[str] = set()  # streams whose recording is moving to the archive
        # Told of each recording the retention pass deleted (the stream's `recorded` flag,
        # which names its replay, is cleared there).
        self.on_deleted: Callable[[str], Awaitable[None]] | None = None

    def folder(self, stream_id: str) -> Path:
        return self.root / stream_id

    def read(self, stream_id: str, name: str) -> RecordedFile | None:
        """A recording's playlist or media file; None if there is none by that name."""
        if name != PLAYLIST and not is_file_name(name):
            return None
        path = self.folder(stream_id) / name
        try:
            stat = path.stat()
            return RecordedFile(path.read_bytes(), stat.st_mtime)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return self.archive.read(stream_id, name) if self.archive is not None else None

    def exists(self, stream_id: str) -> bool:
        return (self.folder(stream_id) / INDEX).exists() or (
            self.folder(stream_id) / PLAYLIST).exists()

    def delete(self, stream_id: str) -> bool:
        folder = self.folder(stream_id)
        found = folder.is_dir()
        if found:
            shutil.rmtree(folder)
        if self.archive is not None:
            found = self.archive.delete(stream_id) or found
        return found

    def archive_later(self, stream_id: str) -> None:
        """Start moving an ended recording to the archive (a long show takes a while; the
        disk copy serves until it is done)."""
        if self.archive is None:
            return
        self.uploading.add(stream_id)
        task = asyncio.create_task(self.archive_ended(stream_id), name="recording-upload")
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)
        task.add_done_callback(lambda _: self.uploading.discard(stream_id))

    async def archive_ended(self, stream_id: str) -> None:
        """An ended recording to the archive, then off the disk (kept there, and served
        from there, if the upload fails)."""
        if self.archive is None or not self.folder(stream_id).is_dir():
            return
        archive = self.archive

        def move() -> int:
            count = archive.upload(stream_id, self.folder(stream_id))
            shutil.rmtree(self.folder(stream_id))
            return count
        try:
            count = await asyncio.to_thread(move)
        except Exception:  # the bucket's errors are boto3's own tree; the disk copy stays
            log.exception("recording %s: upload to the archive failed; kept on disk", stream_id)
            return
        log.info("recording %s: %d files archived", stream_id, count)

    def expired(self, now: float) -> list[str]:
        """Streams whose recording ended (VOD playlist) more than the retention ago."""
        if self.retention_days <= 0 or not self.root.is_dir():
            return []
        horizon = now - self.retention_days * 86400
        out = []
        for folder in self.root.iterdir():
            playlist = folder / PLAYLIST
            try:
                if playlist.stat().st_mtime < horizon and playlist.read_bytes().rstrip().endswith(
                        _ENDLIST):
                    out.append(folder.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return out

    async def sweep(self) -> int:
        """Delete the expired recordings; how many (in a thread: it walks the disk)."""
        def run() -> list[str]:
            gone = self.expired(time.time())
            for stream_id in gone:
                self.delete(stream_id)
            return gone
        gone = await asyncio.to_thread(run)
        for stream_id in gone:
            if self.on_deleted is not None:
                await self.on_deleted(stream_id)
        count = len(gone)
        if count:
            log.info("retention: %d recordings older than %s days deleted", count,
                     self.retention_days)
        return count

    def start(self) -> None:
        if self._task is None and self.retention_days > 0:
            self._task = asyncio.create_task(
                repeat(self.sweep, self._interval, log, "recording retention pass failed"),
                name="recording-retention")

    async def close(self) -> None:
        await stop_task(self._task)
        self._task = None
        for task in list(self._uploads):  # an upload cut short leaves the disk copy
            await stop_task(task)
