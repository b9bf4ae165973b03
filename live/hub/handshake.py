"""What a hub socket's handshake established (`Route`), the hub server's limits, and what a
socket's handler needs of the server (`HubContext`): the handlers (session.py, feeds.py)
depend on this, not on the server that calls them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis

from checkout.buy import BuyService
from checkout.cart import Cart
from checkout.catalog import Catalog
from checkout.orders import OrderBook
from checkout.wallets import WalletStore
from live.accounts.accounts import AccountStore
from live.accounts.auth import Principal, TokenAuthority
from live.accounts.follows import FollowStore
from live.accounts.passkey_auth import PasskeyAuth
from live.chat.store import ChatStore
from live.hub.rooms import Hub
from live.settings import Settings
from live.streams.store import StreamStore

__all__ = ["Route", "WsLimits", "HubContext", "HubServices"]


@dataclass(frozen=True, slots=True)
class Route:
    """What the handshake established: which socket, who (if anyone), resume point."""

    kind: str  # stream | brand | creator
    target: str
    principal: Principal | None
    since: int | None
    ip: str
    obs: bool = False  # `client=obs`: an OBS browser source, shown on air, not a viewer


@dataclass(frozen=True, slots=True)
class WsLimits:
    max_per_ip: int = 1000
    max_per_token: int = 10
    new_per_ip_s: float = 20.0  # new sockets (handshakes) per second per address
    new_burst_per_ip: int = 100
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    message_rate: float = 20.0  # client messages per second, per socket
    message_burst: int = 40
    strikes_before_close: int = 20  # rate-limit error frames before RATE_LIMITED close
    sndbuf_bytes: int | None = 64 * 1024  # bounds kernel memory per socket; backpressure shows sooner
    open_timeout_s: float = 10.0  # TCP accept to the end of the handshake (half-sent ones)
    # Products whose view one socket counts (twice the lineup cap: lineups change); a
    # product_seen past it counts nothing, a product already seen counts nothing again.
    seen_per_socket: int = 100
    # Proxies (addresses or networks) whose X-Forwarded-For names the client (HAProxy's
    # `option forwardfor`): the per-address limits then count the client, not the proxy.
    trusted_proxies: tuple[str, ...] = ()


class HubServices(Protocol):
    """The node's services that the hub uses; the node's `Services` is checked against it
    where it opens the hub (live/node/services.py passes itself to `HubServer`)."""

    @property
    def client(self) -> redis.Redis: ...
    @property
    def tokens(self) -> TokenAuthority: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def streams(self) -> StreamStore: ...
    @property
    def hub(self) -> Hub: ...
    @property
    def chat(self) -> ChatStore: ...
    @property
    def accounts(self) -> AccountStore: ...
    @property
    def follows(self) -> FollowStore: ...
    # Comment-to-buy (live/hub/claims.py): a claim buys as the one-tap buy does.
    @property
    def settings(self) -> Settings: ...
    @property
    def passkeys(self) -> PasskeyAuth: ...
    @property
    def buys(self) -> BuyService: ...
    @property
    def cart(self) -> Cart: ...
    @property
    def orders(self) -> OrderBook: ...
    @property
    def wallets(self) -> WalletStore: ...


class HubContext(Protocol):
    """The server as a socket handler sees it."""

    services: HubServices
    limits: WsLimits
