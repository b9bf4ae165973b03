"""The brand's catalog over real HTTP against a real node: products with options and
variants (each with its SKU and stock), variants added and edited later, archiving and the
brand's own list, stock changes with a reason and their audit, and images (uploaded,
checked by content, stored on disk by their hash, served immutable, reordered, removed)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Live
from shop import buy, give_wallet, make_brand, make_live_stream, make_product, png, stock_of, upload_image
from test_roles import Unchanged, assert_problem

TEE = {"title": "Trail Tee", "description": "Soft.\n\nWashes well.", "price_minor": 2500,
       "currency": "USD", "sku": "TEE",
       "options": [{"name": "Size", "values": ["S", "M"]},
                   {"name": "Colour", "values": ["Red", "Blue"]}],
       "variants": [{"id": "s-red", "sku": "TEE-S-RED", "stock": 4,
                     "options": {"Size": "S", "Colour": "Red"}},
                    {"id": "m-blue", "name": "Medium blue", "sku": "TEE-M-BLUE", "stock": 2,
                     "options": {"Size": "M", "Colour": "Blue"}}]}


async def create(live: Live, body: dict[str, Any], brand: str = "acme") -> httpx.Response:
    return await live.http.post(f"/api/v1/brands/{brand}/products", json=body,
                                headers=live.auth("brand", brand))


async def audit(live: Live, product: str) -> list[dict[str, Any]]:
    r = await live.http.get(f"/api/v1/products/{product}/stock/audit",
                            headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_a_product_with_options_and_variants_each_with_sku_and_stock(live: Live) -> None:
    await make_brand(live)
    r = await create(live, TEE)
    assert r.status_code == 201, r.text
    tee = r.json()
    assert tee["options"] == TEE["options"] and tee["images"] == [] and tee["image_url"] == ""
    assert tee["variants"] == [
        {"id": "s-red", "name": "S / Red", "sku": "TEE-S-RED",
         "options": {"Size": "S", "Colour": "Red"}},  # named after its options by default
        {"id": "m-blue", "name": "Medium blue", "sku": "TEE-M-BLUE",
         "options": {"Size": "M", "Colour": "Blue"}}]
    levels = await stock_of(live, tee["id"])
    assert {v: s["available"] for v, s in levels.items()} == {"s-red": 4, "m-blue": 2}
    public = (await live.http.get(f"/api/v1/products/{tee['id']}")).json()
    assert public["stock"] == {"s-red": 4, "m-blue": 2} and public["variants"] == tee["variants"]

    # A variant added later: one value of each option, its stock audited as initial.
    auth = live.auth("brand", "acme")
    r = await live.http.post(f"/api/v1/products/{tee['id']}/variants", headers=auth,
                             json={"id": "m-red", "sku": "TEE-M-RED", "stock": 7,
                                   "options": {"Size": "M", "Colour": "Red"}})
    assert r.status_code == 201, r.text
    assert [v["id"] for v in r.json()["variants"]] == ["s-red", "m-blue", "m-red"]
    assert r.json()["stock"]["m-red"] == 7
    assert (await audit(live, tee["id"]))[0] | {"id": "", "at": ""} == {
        "id": "", "at": "", "variant": "m-red", "delta": "7", "avail": "7", "kind": "initial",
        "why": "initial stock", "who": "brand:acme"}
    r = await live.http.patch(f"/api/v1/products/{tee['id']}/variants/m-red", headers=auth,
                              json={"name": "Medium red", "sku": "TEE-M-R"})
    assert r.status_code == 200, r.text
    assert r.json()["variants"][2] == {"id": "m-red", "name": "Medium red", "sku": "TEE-M-R",
                                       "options": {"Size": "M", "Colour": "Red"}}
    # A new value for an option keeps every variant valid; a new option would not.
    options = [*TEE["options"][:1], {"name": "Colour", "values": ["Red", "Blue", "Green"]}]
    r = await live.http.patch(f"/api/v1/products/{tee['id']}", headers=auth,
                              json={"options": options})
    assert r.status_code == 200 and r.json()["options"] == options, r.text


async def test_an_order_keeps_the_variant_name_the_buyer_picked(live: Live) -> None:
    """The receipt and the brand's order say "Medium blue", not the id "m-blue", and a name
    changed after the sale changes no order (a snapshot, like the title)."""
    await make_brand(live)
    tee = (await create(live, TEE)).json()
    stream = await make_live_stream(live, [tee["id"]])
    await give_wallet(live, "bob")
    r = await buy(live, "bob", tee["id"], stream=stream["id"], variant="m-blue")
    assert r.status_code == 201, r.text
    order = r.json()["order"]
    assert (order["variant"], order["variant_name"]) == ("m-blue", "Medium blue")
    r = await live.http.patch(f"/api/v1/products/{tee['id']}/variants/m-blue",
                              headers=live.auth("brand", "acme"), json={"name": "Navy, M"})
    assert r.status_code == 200, r.text
    r = await live.http.get(f"/api/v1/orders/{order['id']}", headers=live.auth("buyer", "bob"))
    assert r.status_code == 200 and r.json()["variant_name"] == "Medium blue", r.text


@pytest.mark.parametrize(("label", "change", "kind"), [
    ("a value not of the option", {"variants": [{"id": "a", "options": {"Size": "XL", "Colour": "Red"}}]},
     "bad-variant-options"),
    ("an option missing", {"variants": [{"id": "a", "options": {"Size": "S"}}]},
     "bad-variant-options"),
    ("an option not declared", {"variants": [{"id": "a", "options": {"Size": "S", "Colour": "Red",
                                                                   "Fit": "Slim"}}]},
     "bad-variant-options"),
    ("the same combination twice", {"variants": [
        {"id": "a", "options": {"Size": "S", "Colour": "Red"}},
        {"id": "b", "options": {"Size": "S", "Colour": "Red"}}]}, "bad-variant-options"),
    ("options and no variants", {"variants": []}, "bad-variant-options"),
    ("an option named twice", {"options": [{"name": "Size", "values": ["S"]},
                                           {"name": "size", "values": ["M"]}],
                               "variants": [{"id": "a", "options": {"Size": "S"}}]},
     "bad-variant-options"),
    ("a value twice", {"options": [{"name": "Size", "values": ["S", "S"]}],
                       "variants": [{"id": "a", "options": {"Size": "S"}}]},
     "bad-variant-options"),
    ("a SKU twice", {"variants": [
        {"id": "a", "sku": "X", "options": {"Size": "S", "Colour": "Red"}},
        {"id": "b", "sku": "X", "options": {"Size": "M", "Colour": "Red"}}]}, "duplicate-sku"),
    ("options without options", {"options": [], "variants": [
        {"id": "a", "options": {"Size": "S"}}]}, "bad-variant-options"),
    ("no name and no options", {"options": [], "variants": [{"id": "a"}]},
     "variant-name-required"),
])
async def test_bad_variant_options_are_422_and_make_nothing(live: Live, rclient: Any, label: str,
                                                            change: dict[str, Any],
                                                            kind: str) -> None:
    await make_brand(live)
    async with Unchanged(rclient):
        assert_problem(await create(live, {**TEE, **change}), 422, kind)


async def test_variant_edits_that_break_the_options_are_refused(live: Live, rclient: Any) -> None:
    await make_brand(live)
    tee = (await create(live, TEE)).json()
    auth = live.auth("brand", "acme")
    p = f"/api/v1/products/{tee['id']}"
    async with Unchanged(rclient):
        for method, url, body, status, kind in [
            ("POST", f"{p}/variants", {"id": "x", "options": {"Size": "S", "Colour": "Red"}},
             422, "bad-variant-options"),  # s-red is that combination
            ("POST", f"{p}/variants", {"id": "s-red", "options": {"Size": "M", "Colour": "Red"}},
             409, "variant-exists"),
            ("POST", f"{p}/variants", {"id": "x", "sku": "TEE-S-RED",
                                       "options": {"Size": "M", "Colour": "Red"}},
             422, "duplicate-sku"),
            ("PATCH", f"{p}/variants/m-blue", {"options": {"Size": "S", "Colour": "Red"}},
             422, "bad-variant-options"),
            ("PATCH", f"{p}/variants/nope", {"name": "N"}, 404, "variant-not-found"),
            ("PATCH", f"{p}/variants/m-blue", {}, 422, "empty-patch"),
            ("PATCH", p, {"options": [*TEE["options"], {"name": "Fit", "values": ["Slim"]}]},
             422, "bad-variant-options"),
            ("PATCH", p, {"options": [{"name": "Size", "values": ["S", "M"]},
                                      {"name": "Colour", "values": ["Red"]}]},
             422, "bad-variant-options"),  # m-blue would be left without its value
        ]:
            assert_problem(await live.http.request(method, url, json=body, headers=auth),
                           status, kind)


async def test_a_product_has_at_most_100_variants(live: Live) -> None:
    await make_brand(live)
    many = {**TEE, "options": [{"name": "N", "values": [str(i) for i in range(50)]},
                               {"name": "M", "values": ["a", "b", "c"]}],
            "variants": [{"id": f"v{i}-{m}", "options": {"N": str(i), "M": m}}
                         for i in range(50) for m in "ab"]}
    product = (await create(live, many)).json()
    r = await live.http.post(f"/api/v1/products/{product['id']}/variants",
                             headers=live.auth("brand", "acme"),
                             json={"id": "one-more", "options": {"N": "0", "M": "c"}})
    assert_problem(r, 409, "too-many-variants")
    assert_problem(await create(live, {**many, "variants": [*many["variants"], {
        "id": "one-more", "options": {"N": "0", "M": "c"}}]}), 422, "validation-error")


async def test_stock_changes_carry_a_reason_and_are_audited(live: Live) -> None:
    await make_brand(live)
    tee = (await create(live, TEE)).json()
    url = f"/api/v1/products/{tee['id']}/variants/s-red/stock"
    auth = live.auth("brand", "acme")
    r = await live.http.put(url, headers=auth, json={"adjust": 6, "kind": "received",
                                                     "reason": "PO 77"})
    assert r.status_code == 200 and r.json()["available"] == 10, r.text
    r = await live.http.put(url, headers=auth, json={"adjust": -3, "kind": "damaged",
                                                     "reason": "torn in the warehouse"})
    assert r.status_code == 200 and r.json()["available"] == 7, r.text
    # A change below zero is refused: the stock and the audit stay (only the operation's
    # record is kept, so a retry replays the refusal).
    before = await audit(live, tee["id"])
    assert_problem(await live.http.put(url, headers=auth, json={
        "adjust": -8, "kind": "lost", "reason": "gone"}), 409, "negative-stock")
    assert_problem(await live.http.put(url, headers=auth, json={
        "adjust": 1, "kind": "stolen", "reason": "x"}), 422, "validation-error")
    entries = await audit(live, tee["id"])
    assert entries == before and (await stock_of(live, tee["id"]))["s-red"]["available"] == 7
    assert [(e["variant"], e["kind"], e["delta"], e["avail"], e["why"], e["who"])
            for e in entries[:2]] == [
        ("s-red", "damaged", "-3", "7", "torn in the warehouse", "brand:acme"),
        ("s-red", "received", "6", "10", "PO 77", "brand:acme")]
    assert all(e["at"].isdigit() for e in entries)
    # A change without a kind (the API before kinds) is "other".
    r = await live.http.put(url, headers=auth, json={"set": 1, "reason": "recount"})
    assert r.status_code == 200, r.text
    assert (await audit(live, tee["id"]))[0]["kind"] == "other"


async def test_archive_unarchive_and_the_brands_own_list(live: Live, rclient: Any) -> None:
    await make_brand(live)
    await make_brand(live, "bravo")
    tee = (await create(live, TEE)).json()
    cap = (await make_product(live, title="Cap", sku="CAP"))["id"]
    secret = (await make_product(live, "bravo", title="Secret", sku="S"))["id"]
    acme = live.auth("brand", "acme")
    r = await live.http.post(f"/api/v1/products/{cap}/archive", headers=acme)
    assert r.status_code == 200 and r.json()["status"] == "archived"
    assert (await live.http.post(f"/api/v1/products/{secret}/archive",
                                 headers=live.auth("brand", "bravo"))).status_code == 200

    async def listed(status: str, brand: str = "acme") -> list[str]:
        r = await live.http.get(f"/api/v1/brands/{brand}/products?status={status}",
                                headers=live.auth("brand", brand))
        assert r.status_code == 200, r.text
        return [p["title"] for p in r.json()["items"]]

    assert await listed("active") == ["Trail Tee"]
    assert await listed("archived") == ["Cap"]
    assert await listed("all") == ["Cap", "Trail Tee"]
    assert await listed("archived", "bravo") == ["Secret"]
    # Archived: gone from the public API and the product page; still the brand's to read.
    assert_problem(await live.http.get(f"/api/v1/products/{cap}"), 404, "not-found")
    assert (await live.http.get(f"/p/{cap}")).status_code == 404
    r = await live.http.get(f"/api/v1/brands/acme/products/{cap}", headers=acme)
    assert r.status_code == 200 and r.json()["stock_levels"][0]["available"] == 10

    # Another brand sees none of it: not its list, not its archived product, not its audit.
    async with Unchanged(rclient):
        for url in ("/api/v1/brands/bravo/products?status=archived",
                    "/api/v1/brands/bravo/products?status=all",
                    f"/api/v1/brands/bravo/products/{secret}",
                    f"/api/v1/products/{secret}/stock/audit"):
            assert_problem(await live.http.get(url, headers=acme), 403, "forbidden")
        # Its own brand path with another brand's product: as unknown as none.
        assert_problem(await live.http.get(f"/api/v1/brands/acme/products/{secret}",
                                           headers=acme), 404, "not-found")
        assert_problem(await live.http.get(f"/api/v1/products/{secret}"), 404, "not-found")
        assert_problem(await live.http.get("/api/v1/brands/acme/products?status=gone",
                                           headers=acme), 400, "bad-query")

    r = await live.http.post(f"/api/v1/products/{cap}/unarchive", headers=acme)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert (await live.http.get(f"/api/v1/products/{cap}")).status_code == 200
    assert await listed("archived") == []
    assert tee["status"] == "active"


# ---------------------------------------------------------------- images


def image_path(live: Live, url: str) -> Path:
    name = url.rsplit("/", 1)[1]
    return Path(live.services.settings.data_dir) / "images" / name[:2] / name


async def test_images_are_uploaded_served_immutable_reordered_and_removed(live: Live) -> None:
    await make_brand(live)
    tee = (await create(live, TEE)).json()
    red, blue = png("#e11d48"), png("#2563eb")
    r = await upload_image(live, tee["id"], red)
    assert r.status_code == 201, r.text
    first = r.json()["image"]
    digest = first["id"]
    assert first["url"] == f"/media/images/{digest}.png"
    assert (first["content_type"], first["width"], first["height"]) == ("image/png", 64, 48)
    assert r.json()["image_url"] == first["url"]  # the first image is the product's picture
    stored = image_path(live, first["url"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == digest

    served = await live.http.get(first["url"])
    assert served.status_code == 200 and served.content == stored
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["etag"] == f'"{digest}"'
    assert served.headers["x-content-type-options"] == "nosniff"
    again = await live.http.get(first["url"], headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.content == b""
    assert_problem(await live.http.get(f"/media/images/{'0' * 64}.png"), 404, "not-found")
    assert_problem(await live.http.get("/media/images/..%2Fjwt.secret"), 404, "not-found")

    # Declared as anything the three types or octet-stream: the bytes decide.
    r = await upload_image(live, tee["id"], blue, content_type="application/octet-stream")
    assert r.status_code == 201, r.text
    second = r.json()["image"]["id"]
    assert [i["id"] for i in r.json()["images"]] == [digest, second]
    # The same picture again adds nothing.
    r = await upload_image(live, tee["id"], red)
    assert [i["id"] for i in r.json()["images"]] == [digest, second]

    auth = live.auth("brand", "acme")
    r = await live.http.put(f"/api/v1/products/{tee['id']}/images", headers=auth,
                            json={"order": [second, digest]})
    assert r.status_code == 200 and r.json()["image_url"].endswith(f"{second}.png"), r.text
    page = await live.http.get(f"/p/{tee['id']}")
    assert f'class="product-img" src="/media/images/{second}.png"' in page.text
    assert f'src="/media/images/{digest}.png"' in page.text  # among the thumbnails
    public = (await live.http.get(f"/api/v1/products/{tee['id']}")).json()
    assert public["image_url"] == f"/media/images/{second}.png"
    # The picture is the first image's: a URL of its own would compete with it.
    assert_problem(await live.http.patch(f"/api/v1/products/{tee['id']}", headers=auth,
                                         json={"image_url": "https://img.test/x.png"}),
                   409, "image-url-managed")

    r = await live.http.delete(f"/api/v1/products/{tee['id']}/images/{second}", headers=auth)
    assert r.status_code == 200 and r.json()["image_url"] == first["url"], r.text
    r = await live.http.delete(f"/api/v1/products/{tee['id']}/images/{digest}", headers=auth)
    assert r.status_code == 200 and r.json() == {"images": [], "image_url": ""}
    assert_problem(await live.http.delete(f"/api/v1/products/{tee['id']}/images/{digest}",
                                          headers=auth), 404, "image-not-found")


@pytest.mark.parametrize("node_settings", [{"images_per_product": 2, "image_max_bytes": 4096,
                                            "image_max_pixels": 10_000}])
async def test_bad_uploads_are_refused_and_change_nothing(live: Live, rclient: Any) -> None:
    await make_brand(live)
    tee = (await create(live, TEE)).json()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'
    auth = live.auth("brand", "acme")
    url = f"/api/v1/products/{tee['id']}/images"
    await make_brand(live, "bravo")
    async with Unchanged(rclient):
        for label, data, ctype, status, kind in [
            ("svg", svg, "image/png", 415, "unsupported-image-type"),
            ("svg declared as svg", svg, "image/svg+xml", 415, "unsupported-image-type"),
            ("text", b"hello", "text/plain", 415, "unsupported-image-type"),
            ("multipart", png(), "multipart/form-data; boundary=x", 415, "unsupported-image-type"),
            ("no type", png(), None, 415, "unsupported-image-type"),
            ("empty", b"", "image/png", 422, "invalid-image"),
            ("broken", png()[:60], "image/png", 422, "invalid-image"),
            ("too many pixels", png(size=(101, 100)), "image/png", 422, "image-too-many-pixels"),
            ("too many bytes", b"\x89PNG\r\n\x1a\n" + b"\x00" * 4096, "image/png", 413,
             "image-too-large"),
        ]:
            headers = {**auth, **({"Content-Type": ctype} if ctype else {})}
            r = await live.http.post(url, content=data, headers=headers)
            assert_problem(r, status, kind)
            assert r.json()["status"] == status, label
    assert not (Path(live.services.settings.data_dir) / "images").exists()
    for color in ("red", "blue"):
        assert (await upload_image(live, tee["id"], png(color, (10, 10)))).status_code == 201
    assert_problem(await upload_image(live, tee["id"], png("green", (10, 10))), 409,
                   "too-many-images")
    # A brand uploads to its own products only.
    assert_problem(await upload_image(live, tee["id"], png("green", (10, 10)), brand="bravo"),
                   403, "forbidden")
    order = {"order": [i["id"] for i in (await live.http.get(
        f"/api/v1/products/{tee['id']}")).json()["images"]][:1]}
    assert_problem(await live.http.put(url, headers=auth, json=order), 422, "bad-image-order")
