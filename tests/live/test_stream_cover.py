"""A show's cover over real HTTP against a real node: uploaded as raw image bytes (the
product images' path: checked by content, re-encoded, named by its hash, served immutable),
set by stream.lua with its event, listed by discovery at once, removed back to the
product's picture; refused for other creators, moderators, bad or oversized bytes, and
once the show is over."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image

from checkout.store.keys import stream_events_key
from conftest import Live
from shop import make_brand, make_live_stream, make_product, make_stream, png
from test_roles import Unchanged, assert_problem

IMAGE = "https://img.test/shoe.jpg"  # the product's picture
COVER = "https://img.test/cover.jpg"  # a cover given as a URL when scheduling


async def upload_cover(live: Live, stream: str, data: bytes, *, role: str = "creator",
                       subject: str = "cleo", content_type: str | None = "image/png"
                       ) -> httpx.Response:
    headers = {**live.auth(role, subject),
               **({"Content-Type": content_type} if content_type else {})}
    return await live.http.post(f"/api/v1/streams/{stream}/cover", content=data,
                                headers=headers)


async def listed_cover(live: Live, state: str, stream: str,
                       creator: str | None = None) -> str | None:
    """The cover discovery lists `stream` with (None: not listed)."""
    path = f"/api/v1/creators/{creator}/shows" if creator else "/api/v1/shows"
    r = await live.http.get(path, params={"state": state})
    assert r.status_code == 200, r.text
    return next((s["cover_url"] for s in r.json()["items"] if s["id"] == stream), None)


async def events(live: Live, stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(f[b"e"]) for _, f in
            await live.services.client.xrange(stream_events_key(stream))]


async def test_an_uploaded_cover_is_served_listed_and_removed(live: Live) -> None:
    await make_brand(live)
    shoe = await make_product(live, image_url=IMAGE)
    show = await make_stream(live, [shoe["id"]], title="Sunday drop")
    assert await listed_cover(live, "upcoming", show["id"]) == IMAGE

    r = await upload_cover(live, show["id"], png("#e11d48"))
    assert r.status_code == 201, r.text
    cover = r.json()["cover_url"]
    served = await live.http.get(cover)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert cover == f"/media/images/{hashlib.sha256(served.content).hexdigest()}.png"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert Image.open(io.BytesIO(served.content)).size == (64, 48)
    assert (await live.http.get(f"/api/v1/streams/{show['id']}")).json()["cover_url"] == cover
    # Discovery lists it at once, everywhere the show is listed.
    assert await listed_cover(live, "upcoming", show["id"]) == cover
    assert await listed_cover(live, "upcoming", show["id"], creator="cleo") == cover
    # One change of stream.lua: its event, its rev.
    [event] = [e for e in await events(live, show["id"]) if e["type"] == "stream.cover"]
    assert event["cover_url"] == cover
    assert int(r.json()["rev"]) == int(show.get("rev") or 0) + 1

    # Live, an operator changes it; the new cover is listed with the live show.
    await live.http.post(f"/api/v1/streams/{show['id']}/live", headers=live.auth("creator", "cleo"))
    r = await upload_cover(live, show["id"], png("#2563eb"), role="operator", subject="ops",
                           content_type="application/octet-stream")
    assert r.status_code == 201, r.text
    second = r.json()["cover_url"]
    assert second != cover and await listed_cover(live, "live", show["id"]) == second

    # Removed: the lineup's picture stands in again; removing nothing says nothing.
    host = live.auth("creator", "cleo")
    r = await live.http.delete(f"/api/v1/streams/{show['id']}/cover", headers=host)
    assert r.status_code == 200 and "cover_url" not in r.json(), r.text
    assert await listed_cover(live, "live", show["id"]) == IMAGE
    logged = await events(live, show["id"])
    assert logged[-1]["type"] == "stream.cover" and logged[-1]["cover_url"] == ""
    r = await live.http.delete(f"/api/v1/streams/{show['id']}/cover", headers=host)
    assert r.status_code == 200 and await events(live, show["id"]) == logged

    # Over: its cover stays what it was.
    assert (await upload_cover(live, show["id"], png())).status_code == 201
    await live.http.post(f"/api/v1/streams/{show['id']}/end", headers=host)
    async with Unchanged(live.services.client):
        assert_problem(await upload_cover(live, show["id"], png("#16a34a")), 409, "stream-over")
        assert_problem(await live.http.delete(f"/api/v1/streams/{show['id']}/cover",
                                              headers=host), 409, "stream-over")


async def test_a_cover_url_given_when_scheduling_still_works(live: Live) -> None:
    await make_brand(live)
    shoe = await make_product(live, image_url=IMAGE)
    show = await make_live_stream(live, [shoe["id"]], cover_url=COVER)
    assert show["cover_url"] == COVER and await listed_cover(live, "live", show["id"]) == COVER
    r = await upload_cover(live, show["id"], png())
    assert r.status_code == 201 and r.json()["cover_url"].startswith("/media/images/")
    r = await live.http.delete(f"/api/v1/streams/{show['id']}/cover",
                               headers=live.auth("creator", "cleo"))
    assert r.status_code == 200 and await listed_cover(live, "live", show["id"]) == IMAGE


@pytest.mark.parametrize("node_settings", [{"image_max_bytes": 4096, "image_max_pixels": 10_000}])
async def test_bad_covers_and_other_people_are_refused(live: Live) -> None:
    await make_brand(live)
    shoe = await make_product(live, image_url=IMAGE)
    show = (await make_stream(live, [shoe["id"]]))["id"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
    async with Unchanged(live.services.client):
        for label, data, ctype, status, kind in [
            ("svg", svg, "image/png", 415, "unsupported-image-type"),
            ("text", b"hello", "text/plain", 415, "unsupported-image-type"),
            ("multipart", png(), "multipart/form-data; boundary=x", 415, "unsupported-image-type"),
            ("no type", png(), None, 415, "unsupported-image-type"),
            ("empty", b"", "image/png", 422, "invalid-image"),
            ("broken", png()[:60], "image/png", 422, "invalid-image"),
            ("too many pixels", png(size=(101, 100)), "image/png", 422, "image-too-many-pixels"),
            ("too many bytes", b"\x89PNG\r\n\x1a\n" + b"\x00" * 4096, "image/png", 413,
             "image-too-large"),
        ]:
            r = await upload_cover(live, show, data, content_type=ctype)
            assert_problem(r, status, kind)
            assert r.json()["status"] == status, label
        for role, subject in [("creator", "dana"), ("moderator", "cleo"), ("brand", "acme"),
                              ("buyer", "bob")]:
            assert_problem(await upload_cover(live, show, png(size=(10, 10)), role=role,
                                              subject=subject), 403, "forbidden")
            r = await live.http.delete(f"/api/v1/streams/{show}/cover",
                                       headers=live.auth(role, subject))
            assert_problem(r, 403, "forbidden")
        assert_problem(await upload_cover(live, "s_000000000000", png(size=(10, 10))), 404,
                       "not-found")
    assert not (Path(live.services.settings.data_dir) / "images").exists()
    assert (await upload_cover(live, show, png(size=(10, 10)))).status_code == 201
