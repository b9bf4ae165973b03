"""Ended recordings moved to an S3-compatible bucket (moto's server mode on port 0: real
HTTP and boto3 signing), still served by the node, deleted from the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import Live
from s3_server import s3_credentials, s3_url  # noqa: F401 (fixtures)
from shop import eventually
from test_recording import LOOPBACK, decode, parse_playlist, record_a_show

BUCKET = "livecart-recordings"


@pytest.fixture
def bucket(s3_url: str, s3_credentials: None) -> str:
    boto3.client("s3", endpoint_url=s3_url).create_bucket(Bucket=BUCKET)
    return s3_url


@pytest.fixture
def node_settings(bucket: str) -> dict[str, Any]:
    return {**LOOPBACK, "recording_store": "s3", "recording_s3_bucket": BUCKET,
            "recording_s3_endpoint_url": bucket, "recording_s3_region": "us-east-1",
            "recording_s3_prefix": "shows/"}


async def test_an_ended_recording_moves_to_the_bucket_and_is_served_from_it(
        live: Live, bucket: str) -> None:
    show = await record_a_show(live)
    stream_id = show["stream"]["id"]
    folder = Path(live.services.settings.data_dir) / "recordings" / stream_id
    await eventually(lambda: not folder.exists(), "the disk copy removed after the upload")
    client = boto3.client("s3", endpoint_url=bucket)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert f"shows/{stream_id}/index.m3u8" in keys and f"shows/{stream_id}/init-0.mp4" in keys
    head = client.head_object(Bucket=BUCKET, Key=f"shows/{stream_id}/seg-0.m4s")
    assert head["CacheControl"] == "public, max-age=31536000, immutable"

    r = await live.http.get(f"/hls/{stream_id}/index.m3u8")
    assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=600"
    playlist = parse_playlist(r.text)
    assert playlist["ended"] and len(playlist["segments"]) >= 3
    init = await live.http.get(f"/hls/{stream_id}/{playlist['segments'][0]['map']}")
    first = await live.http.get(f"/hls/{stream_id}/seg-0.m4s")
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    frames, audio = decode(init.content, first.content)
    assert frames and audio
    assert (await live.http.get(f"/hls/{stream_id}/seg-999.m4s")).status_code == 404

    url = f"/api/v1/streams/{stream_id}/recording"
    assert (await live.http.delete(url, headers=live.auth("brand", "other"))).status_code == 403
    assert (await live.http.delete(url, headers=live.auth("creator", "cleo"))).status_code == 204
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix=f"shows/{stream_id}/")
    assert (await live.http.get(f"/hls/{stream_id}/index.m3u8")).status_code == 404
    assert (await live.http.delete(url, headers=live.auth("creator", "cleo"))).status_code == 404
