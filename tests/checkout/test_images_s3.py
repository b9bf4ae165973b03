"""The S3 image store against an S3-compatible server on port 0 (moto's server mode: real
HTTP, real boto3 signing and XML; AWS itself is out of reach from a test), alone and behind
a node configured with `image_store=s3`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from checkout.images import ImageLimits, prepare_image
from checkout.images_s3 import S3ImageStore
from conftest import Live
from s3_server import s3_credentials, s3_url  # noqa: F401 (fixtures)
from shop import make_brand, make_product, png, upload_image

BUCKET = "livecart-images"


@pytest.fixture
def bucket(s3_url: str, s3_credentials: None) -> str:
    """A fresh, private bucket, and credentials of the kind boto3 reads from the environment."""
    client = boto3.client("s3", endpoint_url=s3_url)
    if any(b["Name"] == BUCKET for b in client.list_buckets()["Buckets"]):
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
    else:
        client.create_bucket(Bucket=BUCKET)
    return s3_url


@pytest.fixture
def node_settings(bucket: str) -> dict[str, Any]:
    return {"image_store": "s3", "image_s3_bucket": BUCKET, "image_s3_endpoint_url": bucket,
            "image_s3_region": "us-east-1", "image_s3_prefix": "shop/"}


async def test_the_store_writes_objects_and_reads_them_back(bucket: str) -> None:
    store = S3ImageStore(BUCKET, endpoint_url=bucket, region="us-east-1")
    image = prepare_image(png(), ImageLimits())
    assert await store.get(image.name) is None
    await store.put(image)
    assert await store.get(image.name) == image.data
    head = boto3.client("s3", endpoint_url=bucket).head_object(Bucket=BUCKET,
                                                               Key=f"images/{image.name}")
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    for name in ("../secret", image.name.replace(".png", ".svg")):
        assert await store.get(name) is None


async def test_a_node_with_the_s3_store_uploads_and_serves_from_the_bucket(live: Live,
                                                                           bucket: str) -> None:
    await make_brand(live)
    product = await make_product(live)
    r = await upload_image(live, product["id"], png("#16a34a"))
    assert r.status_code == 201, r.text
    url = r.json()["image"]["url"]
    name = url.rsplit("/", 1)[1]
    stored = boto3.client("s3", endpoint_url=bucket).get_object(Bucket=BUCKET, Key=f"shop/{name}")
    served = await live.http.get(url)
    assert served.status_code == 200 and served.content == stored["Body"].read()
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert not (Path(live.services.settings.data_dir) / "images").exists()
