"""The product page's content, rendered on the server: an affiliate link lands here, so the
product shows (and previews in a chat app) before any script runs; overlay/static/product.js
then turns the sign-in link into a Buy button for a signed-in buyer. Pure: a product record
and its stock in, escaped HTML fragments for templates/product.html out."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import quote

from checkout.money import format_money

__all__ = ["product_parts", "stock_note", "LOW_STOCK"]

LOW_STOCK = 3  # at or below this many left, a variant says "only N left" (as the cards do)


def stock_note(left: int) -> str:
    if left <= 0:
        return "sold out"
    return f"only {left} left" if left <= LOW_STOCK else "in stock"


def _image(product: Mapping[str, Any]) -> str:
    """The picture (the first uploaded image, else `image_url`), and the other uploaded
    images as a row of thumbnails under it."""
    title = escape(product["title"], quote=True)
    if product.get("image_url"):
        main = (f'<img class="product-img" src="{escape(product["image_url"], quote=True)}" '
                f'alt="{title}">')
        more = [i for i in product.get("images") or [] if i["url"] != product["image_url"]]
        if not more:
            return main
        thumbs = "".join(f'<li><img class="product-more" src="{escape(i["url"], quote=True)}" '
                         f'alt="{title}, picture {n}" loading="lazy"></li>'
                         for n, i in enumerate(more, start=2))
        return f'{main}<ul class="product-thumbs">{thumbs}</ul>'
    initial = escape(product["title"].strip()[:1].upper() or "?")
    return f'<div class="product-img product-placeholder" aria-hidden="true">{initial}</div>'


def _description(text: str) -> str:
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{escape(p)}</p>" for p in paragraphs)


def _variants(variants: list[dict[str, Any]], stock: Mapping[str, int]) -> str:
    """A radio per variant (what is left of each; sold out ones disabled, the first open
    one chosen); one variant needs no choice, only what is left of it."""
    if len(variants) == 1:
        only = variants[0]
        left = stock.get(only["id"], 0)
        return (f'<input type="hidden" name="variant" value="{escape(only["id"], quote=True)}">'
                f'<p class="stock-note" data-left="{left}">{escape(stock_note(left).capitalize())}</p>')
    chosen = next((v["id"] for v in variants if stock.get(v["id"], 0) > 0), None)
    rows = []
    for v in variants:
        left = stock.get(v["id"], 0)
        state = " disabled" if left <= 0 else " checked" if v["id"] == chosen else ""
        rows.append(f'<label class="variant"><input type="radio" name="variant" '
                    f'value="{escape(v["id"], quote=True)}"{state}>'
                    f'<span>{escape(v["name"])} · {stock_note(left)}</span></label>')
    return ('<fieldset class="variants"><legend>Choose an option</legend>'
            f'<div class="variant-list">{"".join(rows)}</div></fieldset>')


def _buy(product_id: str, available: bool) -> str:
    """Signed out (the server cannot tell; the script can): Buy signs in first, then comes
    back here, where the attribution cookie still waits."""
    if not available:
        return '<button class="btn btn-block" type="button" disabled>Sold out</button>'
    next_url = quote(f"/p/{product_id}", safe="/")
    return (f'<a class="btn btn-block buy-btn" id="signin-buy" href="/signin?next={next_url}">'
            'Buy</a><p class="buy-hint" id="signin-hint">You’ll sign in first.</p>'
            '<button class="btn btn-block buy-btn" id="buy" type="submit" hidden>Buy</button>')


def product_parts(product: Mapping[str, Any], stock: Mapping[str, int],
                  brand_name: str) -> dict[str, str]:
    """The template's slots for `product` (a catalog record) with `stock` (variant ->
    units available)."""
    variants = product["variants"] or [{"id": "default", "name": "Default"}]
    available = any(stock.get(v["id"], 0) > 0 for v in variants)
    price = format_money(product["price_minor"], product["currency"])
    return {
        "image": _image(product),
        "product_title": escape(product["title"]),
        "brand": escape(brand_name),
        "price": (f'<data class="price" id="price" value="{int(product["price_minor"])}" '
                  f'data-currency="{escape(product["currency"], quote=True)}">{escape(price)}</data>'),
        "description": _description(product.get("description") or ""),
        "variants": _variants(variants, stock),
        "buy": _buy(product["id"], available),
    }
