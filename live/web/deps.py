"""What the web layer needs of the node, as protocols naming only what live/web touches.

The node's `Services` (live/node, a layer above) is assembled there and stored on the app;
handlers read it through `services_of`, typed by `WebServices`. The node assigns its
`Services` to a `WebServices` variable, so mypy proves at assembly that it has all of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

import redis.asyncio as redis
from prometheus_client import Counter
from starlette.requests import Request

from checkout.affiliate import AttributionSigner, LinkStore
from checkout.buy import BuyService
from checkout.cart import Cart
from checkout.catalog import Catalog
from checkout.fulfilment import Fulfilment
from checkout.images import ImageStore
from checkout.orders import OrderBook
from checkout.payments import PaymentGateway
from checkout.programs import ProgramStore
from checkout.waitlist import Waitlist
from checkout.wallets import WalletStore
from live.auctions.desk import AuctionDesk
from live.auctions.store import AuctionStore
from live.chat.store import ChatStore
from live.accounts.accounts import AccountStore
from live.accounts.api_keys import ApiKeyStore
from live.accounts.auth import TokenAuthority
from live.accounts.follows import FollowStore
from live.accounts.invitations import InvitationStore
from live.accounts.mail import Mailer
from live.accounts.passkey_auth import PasskeyAuth
from live.accounts.sessions import SessionStore
from live.accounts.signin import EmailSignIn
from live.accounts.teams import TeamStore
from live.settings import Settings
from live.streams.store import StreamStore
from live.webhooks.endpoints import EndpointStore

if TYPE_CHECKING:  # the Stripe SDK loads only on a node that pays through Stripe
    from checkout.payments.stripe_gateway import StripeGateway

__all__ = ["WebMetrics", "WebServices", "services_of"]


class WebMetrics(Protocol):
    """The node's metrics, as far as handlers count things."""

    @property
    def buys(self) -> Counter: ...


class WebServices(Protocol):
    """The node's services that pages and API handlers use (read-only: they never swap one)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def client(self) -> redis.Redis: ...
    @property
    def tokens(self) -> TokenAuthority: ...
    @property
    def signer(self) -> AttributionSigner: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def streams(self) -> StreamStore: ...
    @property
    def orders(self) -> OrderBook: ...
    @property
    def buys(self) -> BuyService: ...
    @property
    def fulfilment(self) -> Fulfilment: ...
    @property
    def cart(self) -> Cart: ...
    @property
    def waitlist(self) -> Waitlist: ...
    @property
    def wallets(self) -> WalletStore: ...
    @property
    def links(self) -> LinkStore: ...
    @property
    def gateway(self) -> PaymentGateway: ...
    @property
    def metrics(self) -> WebMetrics: ...
    @property
    def hub_port(self) -> int | None: ...  # the bound WebSocket port, once the hub is open
    @property
    def accounts(self) -> AccountStore: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def signin(self) -> EmailSignIn: ...
    @property
    def mailer(self) -> Mailer: ...
    @property
    def stripe(self) -> "StripeGateway | None": ...  # the gateway, when it is Stripe
    @property
    def passkeys(self) -> PasskeyAuth: ...
    @property
    def follows(self) -> FollowStore: ...
    @property
    def chat(self) -> ChatStore: ...
    @property
    def auctions(self) -> AuctionStore: ...
    @property
    def desk(self) -> AuctionDesk: ...
    @property
    def invitations(self) -> InvitationStore: ...
    @property
    def teams(self) -> TeamStore: ...
    @property
    def api_keys(self) -> ApiKeyStore: ...
    @property
    def programs(self) -> ProgramStore: ...
    @property
    def webhooks(self) -> EndpointStore: ...
    @property
    def images(self) -> ImageStore: ...


def services_of(request: Request) -> WebServices:
    """The node's services for this request: the one place the app's untyped state is read
    (the node stores a `WebServices` there at start)."""
    return cast(WebServices, request.scope["app"].state.services)
