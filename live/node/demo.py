"""Demo data for `livecart serve --demo`: a brand, products, a creator live now, a buyer, and
invitations that give demo addresses the operator, brand and creator grants."""

from __future__ import annotations

import time
from dataclasses import dataclass

from checkout.catalog import BrandIn, CatalogError, ProductIn, VariantIn
from checkout.ids import BrandId, BuyerId, CreatorId, ProductId, StreamId, VariantId
from checkout.programs import AppAction, ProductTermsIn, ProgramIn
from checkout.store.keys import brand_products_key
from checkout.store.replies import members
from checkout.wallets import Address, WalletIn
from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.accounts.invitations import describe_grant, invitation_mail
from live.accounts.invite_rules import BrandRole
from live.accounts.mail import MailError
from live.node.services import Services
from live.web.invite_api import INVITE_PAGE
from live.streams.lifecycle import StreamAction
from live.streams.store import StreamIn

__all__ = ["seed_demo", "DemoInfo"]

_BRAND, _CREATOR, _BUYER = BrandId("acme"), CreatorId("cleo"), BuyerId("bob")


@dataclass(frozen=True, slots=True)
class DemoInfo:
    stream_id: StreamId
    product_ids: list[ProductId]
    tokens: dict[str, str]
    tokens_expire_at: int  # unix time; `settings.demo_token_ttl_s` after the seeding
    invitations: dict[str, tuple[str, str]]  # grant -> (email, link), for grants not yet taken


async def _lineup_ok(product_id: ProductId) -> None:
    return None


async def _storefront(services: Services, products: list[ProductId]) -> None:
    """What the storefront shows besides the new live stream: the last run's stream ended
    (one live demo show, not one per run), a show tomorrow, and cleo's shop (her links)."""
    now = int(time.time() * 1000)
    shows = services.streams.shows
    last = await shows.page("live", creator=_CREATOR, cursor=0, limit=100, now_ms=now)
    for stream in last.items:
        await services.streams.act(StreamId(stream["id"]), StreamAction.END)
    if not (await shows.page("upcoming", creator=_CREATOR, cursor=0, limit=1, now_ms=now)).items:
        await services.streams.create(_CREATOR, StreamIn(
            title="Rain gear night", lineup=products[2:], scheduled_at_ms=now + 86_400_000),
            _lineup_ok)
    if not await services.links.for_creator(_CREATOR, limit=1):
        for product in products:
            await services.links.create(_CREATOR, product)


async def seed_demo(services: Services) -> DemoInfo:
    """Idempotent: a second run reuses the brand and its products and opens a new stream."""
    catalog = services.catalog
    try:
        await catalog.create_brand(BrandIn(id=_BRAND, name="Acme Outfitters", currency="USD"))
    except CatalogError:
        pass
    existing = [ProductId(p) for p in
                members(await services.client.zrange(brand_products_key(_BRAND), 0, -1))]
    if not existing:
        for product in (
            ProductIn(title="Trail Runner Sneakers", description="Light, grippy, waterproof.",
                      price_minor=8900, currency="USD", sku="ACME-TRAIL",
                      variants=[VariantIn(id=VariantId("size-40"), name="EU 40", stock=30),
                                VariantIn(id=VariantId("size-42"), name="EU 42", stock=30)],
                      commission_bps=1200, max_per_buyer=2, deal_floor_minor=5900),
            ProductIn(title="Insulated Bottle 750 ml", description="Cold for 24 hours.",
                      price_minor=2900, currency="USD", sku="ACME-BOTTLE", stock=200,
                      commission_bps=1500, deal_floor_minor=1900),
            ProductIn(title="Packable Rain Jacket", description="Folds into its own pocket.",
                      price_minor=12900, currency="USD", sku="ACME-JACKET", stock=50,
                      commission_bps=1000, deal_floor_minor=8900),
        ):
            created = await catalog.create_product(_BRAND, product)
            existing.append(created["id"])
    await _storefront(services, existing)
    await _program(services, existing)
    stream = await services.streams.create(_CREATOR, StreamIn(
        title="Cleo's trail gear drop", lineup=existing, purchase_mode="instant"), _lineup_ok)
    await services.streams.act(stream["id"], StreamAction.GO_LIVE)
    await services.streams.pin(stream["id"], existing[0])
    await services.wallets.put(_BUYER, WalletIn(
        shipping=Address(name="Bob Buyer", line1="1 Market St", city="Springfield",
                         postal_code="12345", country="US"), payment_token="tok_visa"))
    # Printed to a terminal, they outlive the session in scrollback and logs: short-lived.
    ttl_s, now = services.settings.demo_token_ttl_s, int(time.time())
    tokens = {who: services.tokens.mint(role, subject, ttl_s=ttl_s, now=now)
              for who, role, subject in (("operator", Role.OPERATOR, "ops"),
                                         ("brand acme", Role.BRAND, "acme"),
                                         ("creator cleo", Role.CREATOR, "cleo"),
                                         ("buyer bob", Role.BUYER, "bob"))}
    return DemoInfo(stream["id"], existing, tokens, now + ttl_s, await _invite(services))


async def _program(services: Services, products: list[ProductId]) -> None:
    """Acme's affiliate program, by approval at 12% (its products keep their own rates and
    floors), with cleo approved: the program and studio pages have something to show."""
    if await services.programs.get(_BRAND) is not None:
        return
    await services.programs.save(_BRAND, ProgramIn(default_commission_bps=1200, mode="approval"))
    for product_id in products:
        product = await services.catalog.product(product_id) or {}
        await services.programs.set_terms(_BRAND, product_id, ProductTermsIn(
            commission_bps=max(product.get("commission_bps") or 1200, 100),
            deal_floor_minor=product.get("deal_floor_minor")))
    for action in (AppAction.APPLY, AppAction.APPROVE):
        await services.programs.act(_BRAND, _CREATOR, action, who="operator:demo",
                                    message="Trail running and gear reviews.")


# Who the demo invites: sign in as one of these (the code is in the log) and open its link.
_INVITEES: tuple[tuple[str, Grant, BrandRole | None, str], ...] = (
    ("ops@example.com", Grant(Role.OPERATOR, "ops"), None, "ops"),
    ("acme@example.com", Grant(Role.BRAND, _BRAND), "admin", "Acme Outfitters"),
    ("cleo@example.com", Grant(Role.CREATOR, _CREATOR), None, _CREATOR))


async def _invite(services: Services) -> dict[str, tuple[str, str]]:
    """An invitation per demo grant whose address does not hold it yet, mailed (or logged)
    like any other; the links are printed too, so a failed mail costs nothing here."""
    links = {}
    for email, grant, brand_role, name in _INVITEES:
        account = await services.accounts.find(email)
        if account is not None and grant in account.grants:
            continue
        token, invitation = await services.invitations.create(
            email, grant, brand_role, scope="operator", invited_by="operator:demo")
        link = f"{services.settings.base_url}{INVITE_PAGE}/{token}"
        try:
            await services.mailer.send(invitation_mail(
                invitation, link, describe_grant(grant, brand_role, name)))
        except MailError:
            pass  # the banner prints the link
        links[str(grant)] = (email, link)
    return links
