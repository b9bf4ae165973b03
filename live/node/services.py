"""Everything one node owns, built once at start and closed once at stop."""

from __future__ import annotations

import gc
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from checkout.affiliate import AttributionSigner, LinkStore
from checkout.auction_lots import AuctionLots
from checkout.aggregator import Aggregator
from checkout.store.batcher import CommandBatcher
from checkout.buy import BuyService
from checkout.fulfilment import Fulfilment
from checkout.cart import Cart
from checkout.catalog import Catalog
from checkout.images import DiskImageStore, ImageStore
from checkout.orders import OrderBook, StockReturned
from checkout.partitions import AllPartitions, PartitionLeases, Partitions
from checkout.payments import PaymentGateway, SandboxConfig, SandboxGateway
from checkout.programs import ProgramStore
from checkout.store.scripts import load_all
from checkout.sweeper import ReservationSweeper
from checkout.waitlist import Waitlist
from checkout.wallets import WalletStore
from live.accounts.accounts import AccountStore
from live.accounts.auth import TokenAuthority, secret_from_env_or_file
from live.accounts.follows import FollowLimits, FollowStore
from live.accounts.invitations import InvitationLimits, InvitationStore
from live.accounts.mail import Mailer, mailer_for
from live.accounts.passkey_auth import PasskeyAuth, PasskeyLimits
from live.accounts.passkeys import PasskeyStore
from live.accounts.ratelimit import RateLimits
from live.accounts.scripts import load_account_scripts
from live.accounts.sessions import SessionStore
from live.accounts.signin import EmailSignIn, SignInLimits
from live.accounts.teams import TeamStore
from live.accounts.api_keys import ApiKeyStore
from live.hub.rooms import Hub, HubLimits
from live.node.metrics import Metrics
from live.node.redis_compat import DeadlineRedis, PackingConnection
from live.node.redis_compat import check as check_redis_compat
from live.settings import Settings
from live.streams.alerts import AlertLimits, ShowAlerts
from live.streams.shows import ShowIndex
from live.streams.store import StreamStore
from live.auctions.desk import AuctionDesk, DeskLimits
from live.auctions.store import AuctionStore
from live.chat.store import ChatLimits, ChatStore
from live.node.valkey_check import check_server
from live.node.valkey_cluster_client import connect_cluster, is_cluster
from live.node.valkey_server import EmbeddedValkey
from live.video.encoder import VideoFormat
from live.hub.ws_compat import check as check_websockets_compat
from live.video.compat import check as check_video_compat
from live.video.compat import restrict_ice_hosts, stop_consent_after_close
from live.video.metrics import VideoCollector
from live.video.recorder import RecordingConfig
from live.video.recordings import Archive, Recordings
from live.video.service import VideoLimits, VideoService
from live.hub.handshake import WsLimits
from live.hub.server import HubServer
from checkout.webhook_events import HookRecords
from checkout.ids import ProductId, StreamId, VariantId
from live.webhooks.dispatcher import DispatchConfig, Dispatcher, prepare_outbox
from live.webhooks.migration import migrate_legacy_hooks
from live.webhooks.endpoints import EndpointLimits, EndpointStore
from live.webhooks.notices import DisabledNotice

if TYPE_CHECKING:  # the SDK loads only on a node that pays through Stripe
    from checkout.payments.stripe_gateway import StripeGateway

__all__ = ["freeze_heap", "Services", "connect"]

log = logging.getLogger(__name__)


def freeze_heap() -> None:
    """Put what startup made (modules, services, the app: ~160,000 objects that live as
    long as the process) out of the cyclic collector's reach. Under a flash sale a full
    collection ran about twice a second and scanned all of it, ~95 ms each: a third of the
    server's time (BENCHMARKS.md, session 10). Garbage is collected first, not frozen.

    Then the young generation is made larger (`GC_THRESHOLDS`): what a request holds while
    it is in flight (256 at a time under a flash sale) survived each of the ~500 young
    collections a second of the default 700 and was scanned again in the older ones."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# gen0 allocations, then gen0 and gen1 collections, between collections of the next: a
# young collection every 20,000 allocations (default 700), gen2 as before relative to it.
GC_THRESHOLDS = (20_000, 10, 10)


def _stock_back(buys: BuyService, waitlist: Waitlist) -> StockReturned:
    """An order gave its units back: the sold-out gate opens, then the waitlist is served."""
    async def back(product: ProductId, variant: VariantId) -> None:
        buys.gate.reopen(product, variant)
        await waitlist.serve_quietly(product, variant)
    return back


def connect(url: str, *, max_connections: int = 64, pool_timeout_s: float = 5.0) -> redis.Redis:
    """A client that rides out a Valkey restart: every command retries on connection loss.

    Safe only because every write we send is idempotent (scripts with their own records).
    The pool blocks (up to `pool_timeout_s`) when every connection is busy instead of
    failing: under a flash sale the batcher keeps the count of busy connections small.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=pool_timeout_s, socket_timeout=10,
        socket_connect_timeout=2, retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 25),
        retry_on_error=[RedisConnectionError, RedisTimeoutError], health_check_interval=30)
    if pool.connection_class is redis.Connection:  # TCP (not TLS, not a unix socket)
        check_redis_compat()
        pool.connection_class = PackingConnection  # live/node/redis_compat.py
    return DeadlineRedis.from_pool(pool)  # closing the client closes its pool


def _dispatch_config(settings: Settings) -> DispatchConfig:
    return DispatchConfig(
        allow_private=settings.webhook_allow_private, timeout_s=settings.webhook_timeout_s,
        connect_timeout_s=settings.webhook_connect_timeout_s,
        response_max_bytes=settings.webhook_response_max_bytes,
        schedule_s=settings.webhook_retry_schedule_s, jitter=settings.webhook_retry_jitter,
        keep_ms=settings.webhook_keep_s * 1000,
        disable_after_ms=settings.webhook_disable_after_s * 1000,
        disable_failures=settings.webhook_disable_failures,
        concurrency=settings.webhook_concurrency,
        claim_idle_ms=int(settings.webhook_claim_idle_s * 1000))


def _stripe_gateway(client: redis.Redis, settings: Settings) -> "StripeGateway":
    from checkout.payments.stripe_gateway import StripeConfig, StripeGateway

    assert settings.stripe_api_key is not None  # Settings.validate requires it
    return StripeGateway(client, StripeConfig(
        api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret,
        api_base=settings.stripe_api_base, timeout_s=settings.payment_timeout_s))


def _recording_archive(settings: Settings) -> Archive | None:
    """Where ended recordings go when not kept on the disk (boto3 loads only then)."""
    if settings.recording_store != "s3":
        return None
    from live.video.recordings_s3 import S3Recordings

    assert settings.recording_s3_bucket is not None  # Settings.validate requires it
    return S3Recordings(settings.recording_s3_bucket,
                        endpoint_url=settings.recording_s3_endpoint_url,
                        region=settings.recording_s3_region, prefix=settings.recording_s3_prefix)


def _image_store(settings: Settings) -> ImageStore:
    """The disk under the data dir, or an S3-compatible bucket (boto3 loads only then)."""
    if settings.image_store == "s3":
        from checkout.images_s3 import S3ImageStore

        assert settings.image_s3_bucket is not None  # Settings.validate requires it
        return S3ImageStore(settings.image_s3_bucket, endpoint_url=settings.image_s3_endpoint_url,
                            region=settings.image_s3_region, prefix=settings.image_s3_prefix)
    return DiskImageStore(settings.images_path)


@dataclass
class Services:
    settings: Settings
    client: redis.Redis
    batcher: CommandBatcher
    tokens: TokenAuthority
    signer: AttributionSigner
    catalog: Catalog
    streams: StreamStore
    orders: OrderBook
    buys: BuyService
    fulfilment: Fulfilment
    cart: Cart
    waitlist: Waitlist
    wallets: WalletStore
    links: LinkStore
    gateway: PaymentGateway
    aggregator: Aggregator
    sweeper: ReservationSweeper
    metrics: Metrics
    hub: Hub
    video: VideoService
    accounts: AccountStore
    sessions: SessionStore
    signin: EmailSignIn
    mailer: Mailer
    passkeys: PasskeyAuth
    follows: FollowStore
    alerts: ShowAlerts
    invitations: InvitationStore
    teams: TeamStore
    api_keys: ApiKeyStore
    programs: ProgramStore
    webhooks: EndpointStore
    dispatcher: Dispatcher
    images: ImageStore
    chat: ChatStore
    auctions: AuctionStore
    desk: AuctionDesk  # the auctions' lots, charges and closer (live/auctions/desk.py)
    valkey: EmbeddedValkey | None = None
    stripe: "StripeGateway | None" = None  # the gateway, when it is Stripe (saved cards, webhooks)
    hub_server: HubServer | None = None
    hub_port: int | None = None  # the bound WebSocket port, once the hub server is open
    draining: bool = False  # set on SIGTERM (live/node/drain.py): /readyz answers 503
    # The partitions this node sweeps and folds (checkout/partitions.py); None without the
    # background loops (the sweeper then covers every partition when run by hand).
    leases: PartitionLeases | None = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def start(cls, settings: Settings, *, background: bool = True) -> "Services":
        data_dir = Path(settings.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        valkey = None
        url = settings.redis_url
        if url is None:
            if settings.durability == "replicated":
                raise RuntimeError("durability=replicated needs a Valkey with replicas "
                                   "(--redis-url); the embedded one has none")
            appendfsync = "always" if settings.durability == "appendfsync" else "everysec"
            valkey = EmbeddedValkey(data_dir / "valkey", appendfsync=appendfsync)
            await valkey.start()
            url = valkey.url
            log.info("embedded Valkey on %s (data in %s)", url, data_dir / "valkey")
        cluster = await is_cluster(url)
        if cluster and settings.durability == "waitaof":
            raise RuntimeError("durability=waitaof is not supported on a cluster yet (WAITAOF "
                               "must follow each shard's writes); use appendfsync always or replicated")
        client = connect_cluster(url) if cluster else connect(url)
        try:
            info = await check_server(client)
            if settings.durability == "appendfsync" and info.appendfsync not in ("always", "unknown"):
                raise RuntimeError(
                    f"durability=appendfsync needs `appendfsync always` (server has "
                    f"{info.appendfsync}); set it, or run with LIVECART_DURABILITY=waitaof")
            await load_all(client)
            await load_account_scripts(client)
            await prepare_outbox(client, range(settings.partitions))
            await migrate_legacy_hooks(client, settings.partitions)
        except BaseException:
            await client.aclose()
            if valkey is not None:
                await valkey.stop()
            raise
        secret = secret_from_env_or_file(data_dir, settings.jwt_secret)
        batcher = CommandBatcher(client, durability=settings.durability,
                                 replica_ack_timeout_ms=settings.replica_ack_timeout_ms)
        orders = OrderBook(client, batcher)
        stripe = _stripe_gateway(client, settings) if settings.payments == "stripe" else None
        gateway: PaymentGateway = stripe or SandboxGateway(  # {gw}: one slot for its scripts
            client, SandboxConfig(max_tokens=settings.sandbox_max_tokens, prefix="{gw}:"))
        buys = BuyService(batcher, orders, gateway, hold_ms=settings.reservation_ttl_s * 1000,
                          idempotency_ttl_s=settings.idempotency_ttl_s,
                          capture_immediately=settings.capture_mode == "immediate",
                          payment_timeout_s=settings.payment_timeout_s,
                          capture_owed_after_ms=settings.capture_owed_after_s * 1000,
                          payment_window_ms=int(settings.payment_window_s * 1000),
                          max_quantity=settings.max_quantity_per_buy,
                          sold_out_gate_ms=settings.sold_out_gate_ms)
        waitlist = Waitlist(client, buys, hold_ms=settings.waitlist_hold_s * 1000)
        fulfilment = Fulfilment(batcher, orders, buys, gateway,
                                payment_timeout_s=settings.payment_timeout_s,
                                capture_owed_after_ms=settings.capture_owed_after_s * 1000,
                                refund_owed_after_ms=settings.capture_owed_after_s * 1000)
        metrics = Metrics()
        auctions = AuctionStore(client, batcher)
        wallets = WalletStore(client, batcher, gateway,
                              max_addresses=settings.wallet_max_addresses,
                              max_cards=settings.wallet_max_cards)

        # Units back through this node open its sold-out gate at once (checkout/sold_out_gate.py).
        orders.on_stock_returned = _stock_back(buys, waitlist)
        catalog = Catalog(client, batcher, partitions=settings.partitions)
        catalog.on_units_added = buys.gate.reopen
        lots = AuctionLots(batcher)
        lots.on_unit_back = buys.gate.reopen
        hooks = HookRecords(keep_ms=settings.webhook_keep_s * 1000,
                            log_keep=settings.webhook_log_keep, partitions=settings.partitions)
        streams = StreamStore(client, max_pinned=settings.max_pinned, shows=ShowIndex(
            client, late_grace_ms=settings.show_late_grace_s * 1000), hooks=hooks,
            batcher=batcher)
        # The pid: a hub in its own process (live/node/hub_process.py) is another node's hub.
        hub_id = f"{socket.gethostname()}:{settings.port}:{os.getpid()}:{id(metrics):x}"
        hub = Hub(client, hub_id, HubLimits(
            outbox_bytes=settings.ws_outbox_bytes, slow_close_s=settings.ws_slow_close_s,
            slow_drop_s=settings.ws_slow_drop_s,
            tick_s=settings.ws_tick_ms / 1000, chat_per_viewer_s=settings.chat_per_viewer_s,
            chat_tick_s=settings.chat_tick_ms / 1000))
        check_video_compat()  # fail at start, not mid-stream, if aiortc's internals moved
        check_websockets_compat()
        restrict_ice_hosts(settings.video_ice_hosts)
        stop_consent_after_close()
        video = VideoService(streams, hub, VideoFormat(
            width=settings.video_width, height=settings.video_height, fps=settings.video_fps,
            bitrate=settings.video_bitrate, keyint_s=settings.video_keyint_s,
            preset=settings.video_x264_preset), VideoLimits(
            max_peers=settings.video_max_peers, viewer_queue_packets=settings.video_viewer_queue,
            publisher_timeout_s=settings.video_publisher_timeout_s,
            reconnect_grace_s=settings.video_reconnect_grace_s,
            connect_timeout_s=settings.video_connect_timeout_s,
            encode=settings.video_encode,
            max_peers_per_ip=settings.video_max_peers_per_ip,
            new_sessions_per_ip_s=settings.video_new_sessions_per_ip_s),
            recording=RecordingConfig(
                settings.recordings_path, segment_s=settings.recording_segment_s,
                part_s=settings.recording_part_s,
                live_window=settings.recording_live_window,
                queue_packets=settings.recording_queue_packets)
            if settings.recording_enabled else None,
            recordings=Recordings(settings.recordings_path, settings.recording_retention_days,
                                  archive=_recording_archive(settings)))
        if video.recordings is not None:
            video.recordings.on_deleted = lambda stream_id: streams.set_recorded(
                StreamId(stream_id), False)
        metrics.registry.register(VideoCollector(video))
        accounts = AccountStore(client)
        mailer = mailer_for(settings)
        follows = FollowStore(client, FollowLimits(
            follows_per_account=settings.follows_per_account,
            reminders_per_account=settings.reminders_per_account,
            reminder_keep_ms=settings.show_late_grace_s * 1000))
        alerts = ShowAlerts(client, follows, accounts, mailer,
                            node=f"{socket.gethostname()}:{settings.port}:{id(metrics):x}",
                            base_url=settings.base_url, limits=AlertLimits(
                                batch=settings.alert_batch,
                                mails_per_s=settings.alert_mails_per_s,
                                max_recipients=settings.alert_max_recipients))
        streams.on_live = alerts.stream_live
        teams = TeamStore(client)
        node = f"{socket.gethostname()}:{settings.port}"  # consumer name and lease holder
        leases = PartitionLeases(client, node, count=settings.partitions,
                                 ttl_ms=int(settings.partition_lease_s * 1000)) if background else None
        partitions: Partitions = leases or AllPartitions(settings.partitions)
        dispatcher = Dispatcher(
            client, node, _dispatch_config(settings), partitions=partitions,
            on_disabled=DisabledNotice(teams, accounts, mailer, settings.base_url))

        services = cls(
            settings=settings, client=client, batcher=batcher, tokens=TokenAuthority(secret),
            signer=AttributionSigner(secret, settings.attribution_window_s),
            catalog=catalog,
            streams=streams, orders=orders,
            buys=buys, fulfilment=fulfilment, cart=Cart(client, buys, orders, hold_ms=settings.cart_hold_s * 1000,
                                 idempotency_ttl_s=settings.idempotency_ttl_s),
            waitlist=waitlist, links=LinkStore(client),
            wallets=wallets,
            gateway=gateway,
            aggregator=Aggregator(client, node, partitions=partitions,
                                  hooks=hooks, stock_low=settings.webhook_stock_low),
            sweeper=ReservationSweeper(client, orders, gateway, partitions=partitions,
                                       interval_s=settings.sweep_interval_s,
                                       capture_retry_ms=settings.capture_owed_after_s * 1000,
                                       finish_refunds=fulfilment.finish_refunds),
            metrics=metrics, valkey=valkey, stripe=stripe, hub=hub, video=video,
            accounts=accounts, follows=follows, alerts=alerts,
            sessions=SessionStore(client, idle_s=settings.session_idle_s,
                                  max_s=settings.session_max_s),
            signin=EmailSignIn(client, secret, RateLimits(client), SignInLimits(
                code_ttl_s=settings.signin_code_ttl_s, max_attempts=settings.signin_max_attempts,
                window_s=settings.signin_limit_window_s, per_email=settings.signin_per_email,
                per_ip=settings.signin_per_ip,
                verify_per_challenge=settings.signin_verify_per_challenge)),
            mailer=mailer,
            passkeys=PasskeyAuth(client, PasskeyStore(
                client, max_per_account=settings.passkeys_per_account), RateLimits(client),
                PasskeyLimits(challenge_ttl_s=settings.passkey_challenge_ttl_s,
                              window_s=settings.signin_limit_window_s,
                              signin_per_ip=settings.passkey_signin_per_ip,
                              options_per_account=settings.passkey_options_per_account)),
            invitations=InvitationStore(client, RateLimits(client), InvitationLimits(
                ttl_s=settings.invite_ttl_s, keep_s=settings.invite_keep_s,
                window_s=settings.invite_limit_window_s, per_scope=settings.invite_per_scope,
                per_email=settings.invite_per_email)),
            teams=teams, dispatcher=dispatcher,
            chat=ChatStore(client, ChatLimits(
                min_gap_ms=settings.chat_min_gap_ms,
                staff_min_gap_ms=settings.chat_staff_min_gap_ms,
                duplicate_window_s=settings.chat_duplicate_window_s,
                log_max=settings.chat_log_max, backlog=settings.chat_backlog,
                held_max=settings.chat_held_max)),
            auctions=auctions,
            desk=AuctionDesk(client, auctions, lots, buys, wallets, streams,
                             DeskLimits(
                                 interval_s=settings.auction_close_interval_s,
                                 batch=settings.auction_close_batch,
                                 second_chance_ms=settings.auction_second_chance_s * 1000,
                                 retry_ms=int(settings.auction_charge_retry_s * 1000))),
            api_keys=ApiKeyStore(client, max_per_brand=settings.api_keys_per_brand),
            programs=ProgramStore(client,
                                  max_applications=settings.program_max_applications),
            webhooks=EndpointStore(client, hooks, EndpointLimits(
                max_per_owner=settings.webhook_max_endpoints,
                rotation_grace_ms=settings.webhook_rotation_grace_s * 1000)),
            images=_image_store(settings), leases=leases)
        if leases is not None:
            await services._take_partitions(leases)
            services.aggregator.start()
            services.sweeper.start()
            services.hub.start()
            services.video.start()
            services.dispatcher.start()
            services.desk.start()
        return services

    async def _take_partitions(self, leases: PartitionLeases) -> None:
        """Take this node's share before the loops start (a lone node: every partition, so
        a sweep run right after start covers every product), then keep it up to date."""
        try:
            await leases.rebalance()
        except BaseException:
            await self.close()
            raise
        leases.start()

    async def start_hub_server(self, host: str, port: int,
                               origins: tuple[str, ...] | None = None) -> int:
        """Open the WebSocket port; returns the bound port (port 0 picks one)."""
        s = self.settings
        allowed = origins if origins is not None else s.origins()
        self.hub_server = HubServer(self, allowed_origins=allowed, limits=WsLimits(
            max_per_ip=s.ws_max_per_ip, max_per_token=s.ws_max_per_token,
            new_per_ip_s=s.ws_new_per_ip_s, new_burst_per_ip=s.ws_new_burst_per_ip,
            ping_interval_s=s.ws_ping_interval_s, ping_timeout_s=s.ws_ping_interval_s,
            message_rate=s.ws_message_rate, message_burst=int(2 * s.ws_message_rate),
            sndbuf_bytes=s.ws_sndbuf_bytes, open_timeout_s=s.ws_open_timeout_s,
            trusted_proxies=s.forwarded_allow_ips))
        self.hub_port = await self.hub_server.start(host, port)
        return self.hub_port

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.hub_server is not None:
            await self.hub_server.close()
        await self.video.close()
        await self.alerts.close()
        await self.hub.close()
        await self.dispatcher.close()
        await self.desk.close()
        await self.sweeper.close()
        await self.aggregator.close()
        if self.leases is not None:  # given back now: the other nodes take them at once
            await self.leases.close()
        await self.batcher.close()
        if self.stripe is not None:
            await self.stripe.aclose()
        await self.client.aclose()
        if self.valkey is not None:
            await self.valkey.stop()
