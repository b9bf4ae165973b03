"""Product images over HTTP: upload (the raw bytes as the body), remove, reorder, and the
public `/media/images/<sha256>.<ext>` route that serves them, immutable.

The checks and the re-encoding are checkout/images.py's; this module reads a capped body,
runs them in a thread (decoding is CPU work that must not stall the event loop), stores
the result and records it on the product. `receive_image` is that path on its own, for
the other pictures people upload (a show's cover, live/web/stream_api.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from checkout.catalog import ImageOrder
from checkout.ids import ProductId
from checkout.images import (CONTENT_TYPES, ImageLimits, PreparedImage, is_image_name,
                             prepare_image)
from live.accounts.auth import Role
from live.web.api import Api, Call, json_response
from live.web.caching import IMMUTABLE, etag_matches
from live.web.catalog_api import owned_product
from live.web.deps import services_of
from live.web.problems import Problem

__all__ = ["register", "media_routes", "receive_image", "IMAGE_PATH", "UPLOAD_TYPES"]

IMAGE_PATH = "/media/images/"
# What an upload may declare; what it is comes from its bytes (checkout/images.py).
UPLOAD_TYPES = (*CONTENT_TYPES.values(), "application/octet-stream")


async def _read_upload(request: Request, max_bytes: int) -> bytes:
    """The body, capped at `max_bytes` by Content-Length and by what arrives (413)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in UPLOAD_TYPES:
        raise Problem(415, "unsupported-image-type",
                      "send the image's bytes as the body, as image/jpeg, image/png or "
                      "image/webp (multipart forms are not taken)")
    declared = request.headers.get("content-length")
    too_large = Problem(413, "image-too-large", f"an image is at most {max_bytes} bytes")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    if not size:
        raise Problem(422, "invalid-image", "the body is empty")
    return b"".join(chunks)


async def receive_image(call: Call[Any]) -> PreparedImage:
    """The request's image, stored: its body read capped (image_max_bytes), checked and
    re-encoded in a thread (image_max_pixels), then put in the image store. Product images
    and show covers both come in through here; it is served at IMAGE_PATH + its name."""
    settings = call.services.settings
    data = await _read_upload(call.request, settings.image_max_bytes)
    limits = ImageLimits(settings.image_max_bytes, settings.image_max_pixels)
    image = await asyncio.to_thread(prepare_image, data, limits)
    await call.services.images.put(image)
    return image


def register(api: Api) -> None:
    brand_roles = (Role.BRAND, Role.OPERATOR)

    @api.endpoint("POST", "/products/{product}/images",
                  summary="Upload an image (JPEG, PNG or WebP bytes as the body); the first "
                          "image is the product's picture", tag="catalog", roles=brand_roles,
                  raw_body="image/*", status=201)
    async def upload_image(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        settings = call.services.settings
        if len(product["images"]) >= settings.images_per_product:  # before reading the body
            raise Problem(409, "too-many-images",
                          f"a product has at most {settings.images_per_product} images")
        image = await receive_image(call)
        record = {"id": image.digest, "url": IMAGE_PATH + image.name,
                  "content_type": image.content_type, "width": image.width,
                  "height": image.height, "bytes": len(image.data)}
        updated = await call.services.catalog.add_image(
            product["id"], record, max_images=settings.images_per_product)
        return json_response({"image": record, "images": updated["images"],
                              "image_url": updated["image_url"]}, 201)

    @api.endpoint("DELETE", "/products/{product}/images/{image}",
                  summary="Remove an image from the product", tag="catalog", roles=brand_roles)
    async def remove_image(call: Call[Any]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        updated = await call.services.catalog.remove_image(product["id"], call.param("image"))
        return json_response({"images": updated["images"], "image_url": updated["image_url"]})

    @api.endpoint("PUT", "/products/{product}/images",
                  summary="Reorder the product's images (the first is its picture)",
                  tag="catalog", body=ImageOrder, roles=brand_roles)
    async def order_images(call: Call[ImageOrder]) -> Response:
        product = await owned_product(call, ProductId(call.param("product")))
        updated = await call.services.catalog.order_images(product["id"], call.body.order)
        return json_response({"images": updated["images"], "image_url": updated["image_url"]})


async def serve_image(request: Request) -> Response:
    """An image by its content's name: never changes, so cached for a year as immutable,
    with its hash as the ETag; `nosniff` and a sandboxing CSP so it is only ever an image."""
    name = request.path_params["name"]
    if not is_image_name(name):
        raise Problem(404, "not-found", "no such image")
    etag = f'"{name.split(".", 1)[0]}"'
    headers = {"Cache-Control": IMMUTABLE, "ETag": etag, "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox"}
    if etag_matches(request, etag):
        # The name is the content's hash: whoever holds this ETag holds these bytes.
        return Response(status_code=304, headers=headers)
    data = await services_of(request).images.get(name)
    if data is None:
        raise Problem(404, "not-found", "no such image")
    return Response(data, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]], headers=headers)


def media_routes() -> list[Route]:
    return [Route(IMAGE_PATH + "{name}", serve_image, methods=["GET"])]
