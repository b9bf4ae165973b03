"""Product images in an S3-compatible bucket (`LIVECART_IMAGE_STORE=s3`), through boto3.

The node still serves them (`/media/images/...`, immutable), reading the bucket on a miss
of whatever cache sits in front, so the bucket stays private: nothing needs a public ACL or
a bucket policy. boto3 is synchronous and its clients are thread-safe: each call runs in a
worker thread. Credentials come the way boto3 always finds them (the `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` variables, a profile, an instance role), never from livecart's own
settings. Imported only when configured, so a disk-only node never loads boto3.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from checkout.images import PreparedImage, is_image_name

__all__ = ["S3ImageStore", "s3_client"]

_MISSING = {"NoSuchKey", "404", "NotFound"}


def s3_client(endpoint_url: str | None, region: str | None, timeout_s: float) -> Any:
    """A boto3 S3 client with bounded connect/read timeouts and boto3's standard retries
    (3 attempts), as every bucket livecart writes uses it (images, recordings)."""
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                      retries={"max_attempts": 3, "mode": "standard"}))


class S3ImageStore:
    """Objects `<prefix><sha256>.<ext>` in `bucket`, written with their Content-Type and an
    immutable Cache-Control (for anything that reads the bucket directly)."""

    def __init__(self, bucket: str, *, endpoint_url: str | None = None,
                 region: str | None = None, prefix: str = "images/",
                 timeout_s: float = 10.0) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = s3_client(endpoint_url, region, timeout_s)

    async def put(self, image: PreparedImage) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=self.prefix + image.name,
            Body=image.data, ContentType=image.content_type,
            CacheControl="public, max-age=31536000, immutable")

    async def get(self, name: str) -> bytes | None:
        if not is_image_name(name):
            return None
        return await asyncio.to_thread(self._read, self.prefix + name)

    def _read(self, key: str) -> bytes | None:
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        data: bytes = reply["Body"].read()
        return data
