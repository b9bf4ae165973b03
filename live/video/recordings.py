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

from checkout.tasks import repeat, stop_task
from live.video.playlist import is_file_name
from live.video.recorder import INDEX, PLAYLIST

__all__ = ["Recordings", "RecordedFile"]

log = logging.getLogger(__name__)

_ENDLIST = b"#EXT-X-ENDLIST"


@dataclass(frozen=True, slots=True)
class RecordedFile:
    data: bytes
    mtime: float


class Recordings:
    def __init__(self, root: Path, retention_days: float, sweep_interval_s: float = 3600.0) -> None:
        self.root = root
        self.retention_days = retention_days
        self._interval = sweep_interval_s
        self._task: asyncio.Task[None] | None = None

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
            return None

    def exists(self, stream_id: str) -> bool:
        return (self.folder(stream_id) / INDEX).exists() or (
            self.folder(stream_id) / PLAYLIST).exists()

    def delete(self, stream_id: str) -> bool:
        folder = self.folder(stream_id)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder)
        return True

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
        def run() -> int:
            gone = self.expired(time.time())
            for stream_id in gone:
                self.delete(stream_id)
            return len(gone)
        count = await asyncio.to_thread(run)
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
