"""Ended recordings in an S3-compatible bucket (`LIVECART_RECORDING_STORE=s3`), through boto3.

A show is recorded on the node's disk (the live playlist changes every segment); when it
ends, its files are uploaded to `<prefix><stream>/<name>` and the local folder is removed.
The node keeps serving `/hls/...` (reading the bucket, so it stays private), with the same
cache headers, and deletes from the bucket too. Credentials come the way boto3 finds them,
as for images (checkout/images_s3.py). Retention in the bucket is the bucket's own
lifecycle rule (expire `<prefix>` after N days); the node's pass covers its disk only.
Imported only when configured, so a disk-only node never loads boto3.
"""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError

from checkout.images_s3 import s3_client
from live.video.playlist import PART_NAME
from live.video.recordings import RecordedFile
from live.web.caching import IMMUTABLE

__all__ = ["S3Recordings"]

_MISSING = {"NoSuchKey", "404", "NotFound"}
_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "mp4": "video/mp4",
          "m4s": "video/iso.segment", "jsonl": "application/jsonl"}


class S3Recordings:
    """Synchronous (boto3 clients are thread-safe): called from worker threads only."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None,
                 region: str | None = None, prefix: str = "recordings/",
                 timeout_s: float = 10.0) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = s3_client(endpoint_url, region, timeout_s)

    def upload(self, stream_id: str, folder: Path) -> int:
        """Every file of an ended recording, the playlist last (it names the others)."""
        # Not the last low-latency parts: the VOD playlist names none of them.
        files = sorted((p for p in folder.iterdir() if not p.name.endswith(".part")
                        and PART_NAME.fullmatch(p.name) is None),
                       key=lambda p: p.name == "index.m3u8")
        for path in files:
            kind = path.name.rsplit(".", 1)[-1]
            self._client.put_object(
                Bucket=self.bucket, Key=f"{self.prefix}{stream_id}/{path.name}",
                Body=path.read_bytes(), ContentType=_TYPES.get(kind, "application/octet-stream"),
                CacheControl="public, max-age=600" if kind == "m3u8" else IMMUTABLE)
        return len(files)

    def read(self, stream_id: str, name: str) -> RecordedFile | None:
        try:
            reply = self._client.get_object(Bucket=self.bucket,
                                             Key=f"{self.prefix}{stream_id}/{name}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        data: bytes = reply["Body"].read()
        return RecordedFile(data, reply["LastModified"].timestamp())

    def delete(self, stream_id: str) -> bool:
        keys = [item["Key"] for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}{stream_id}/")
            for item in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            self._client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
        return bool(keys)
