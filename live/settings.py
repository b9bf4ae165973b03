"""One typed settings object, read from the CLI and the environment once, at the edge."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlsplit

__all__ = ["Settings", "BuyConfirm", "CaptureMode", "Durability", "Payments", "VideoEncode",
           "ImageStoreKind", "HubMode"]

BuyConfirm = Literal["passkey", "none"]
CaptureMode = Literal["immediate", "on_shipment"]
Payments = Literal["sandbox", "stripe"]
Durability = Literal["appendfsync", "waitaof", "replicated"]
VideoEncode = Literal["shared", "per_viewer"]
HubMode = Literal["process", "inline"]
ImageStoreKind = Literal["disk", "s3"]

_ENV_PREFIX = "LIVECART_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of a livecart node; the defaults are the documented limits (docs/limits.md)."""

    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None  # None: start the embedded Valkey under data_dir
    data_dir: Path = Path("./livecart-data")
    demo: bool = False
    demo_token_ttl_s: int = 3600  # the tokens `--demo` prints (stdout is no place for long ones)
    jwt_secret: str | None = None  # None: read or create data_dir/jwt.secret
    public_url: str | None = None  # what we print and put in affiliate links
    allowed_origins: tuple[str, ...] = ()
    # HTTP limits
    max_body_bytes: int = 64 * 1024
    page_size_max: int = 100
    http_header_timeout_s: float = 10.0  # first byte (or connect) to the end of the headers
    http_body_timeout_s: float = 30.0  # end of the headers to the end of the body
    http_max_header_bytes: int = 32 * 1024  # request line and headers: 431 beyond
    http_keep_alive_s: float = 5.0  # idle between two requests on one connection
    http_max_connections: int = 4096  # per process; a request past it is answered 503
    # checkout
    durability: Durability = "appendfsync"
    replica_ack_timeout_ms: int = 1000  # replicated: a buy no replica has by then answers 503
    capture_mode: CaptureMode = "immediate"
    reservation_ttl_s: int = 120
    idempotency_ttl_s: int = 24 * 3600
    attribution_window_s: int = 7 * 24 * 3600
    cart_hold_s: int = 600
    waitlist_hold_s: int = 300
    max_quantity_per_buy: int = 10
    # A variant reserve.lua called sold out is refused by this node, without Valkey, to new
    # buys for this long after (0: off); units given back through this node reopen it at
    # once, through another node within it (docs/checkout.md "The sold-out gate").
    sold_out_gate_ms: int = 250
    max_pinned: int = 3
    # A buyer's deal window follows the delay of the picture they watch (an HLS player is
    # seconds behind the room), up to this much (docs/checkout.md "A deal on every screen").
    deal_viewer_delay_max_ms: int = 10_000
    show_late_grace_s: int = 3600  # a scheduled show not live by its time + this leaves Upcoming
    payment_timeout_s: float = 5.0
    payment_window_s: float = 30.0  # a claimed order not authorized by then expires (void owed)
    capture_owed_after_s: int = 30  # immediate mode: the sweeper captures what a buy could not
    sweep_interval_s: float = 1.0
    # background work split across nodes (checkout/partitions.py): products, and webhook
    # owners (docs/webhooks.md), in this many partitions (fixed for a deployment's data),
    # each leased to one node for this long
    partitions: int = 16
    partition_lease_s: float = 10.0
    # payments: the sandbox gateway (default) or Stripe (docs/checkout.md, Payments)
    payments: Payments = "sandbox"
    sandbox_max_tokens: int = 100_000  # tokenized sandbox cards kept: 503 beyond
    # wallets: per buyer (checkout/wallets.py), 409 too-many-addresses / too-many-cards beyond
    wallet_max_addresses: int = 10
    wallet_max_cards: int = 10
    api_keys_per_brand: int = 20  # 409 too-many-api-keys beyond (live/accounts/api_keys.py)
    stripe_api_key: str | None = field(default=None, repr=False)  # needed with stripe
    stripe_webhook_secret: str | None = field(default=None, repr=False)  # whsec_...
    stripe_api_base: str | None = None  # None: Stripe's own; a local server in tests
    # The pages' card form with Stripe: Stripe.js, loaded from Stripe (PCI DSS SAQ A asks
    # that it is never self-hosted), with the account's publishable key (pk_...).
    stripe_publishable_key: str | None = None  # needed with stripe
    stripe_js_url: str = "https://js.stripe.com/v3/"
    # hub (WebSocket) limits
    ws_port: int | None = None  # None: HTTP port + 1
    # `serve` runs the hub in its own process (live/node/hub_process.py), or in the HTTP
    # API's process and event loop ("inline": buys then wait behind fan-out, BENCHMARKS.md).
    hub_mode: HubMode = "process"
    hub_restart_s: float = 1.0  # a hub process that died is started again after this wait
    ws_outbox_bytes: int = 256 * 1024
    ws_slow_close_s: float = 5.0
    ws_slow_drop_s: float = 2.0  # a 4008 close frame not taken by then: the connection is dropped
    ws_tick_ms: int = 100
    ws_max_per_ip: int = 1000
    ws_max_per_token: int = 10
    ws_new_per_ip_s: float = 20.0  # new sockets per second per address; beyond it 429
    ws_new_burst_per_ip: int = 100
    ws_message_rate: float = 20.0
    ws_ping_interval_s: float = 20.0
    # Kernel send buffer per socket (0 or None: the OS's autotuning, up to 4 MiB a socket,
    # where a non-reader's whole snapshot hid from the outbox cap).
    ws_sndbuf_bytes: int | None = 64 * 1024
    ws_open_timeout_s: float = 10.0  # TCP accept to the end of the opening handshake
    # The hub's base URL as browsers reach it (ws:// or wss://, no path), for the pages; None:
    # the page's own host on the hub's port. Behind one balancer port: its public URL, whose
    # /ws/ paths go to the hubs (deploy/haproxy.cfg).
    public_ws_url: str | None = None
    # Drain on SIGTERM (docs/architecture.md, "Many nodes"): /readyz answers 503 and the hub
    # takes no new sockets for drain_delay_s (the balancer's checks see it), then every hub
    # socket is closed 4011 (reconnect elsewhere), within drain_timeout_s.
    drain_delay_s: float = 3.0
    # Proxies (addresses or networks, e.g. the HAProxy's) whose X-Forwarded-For is believed,
    # for HTTP and the hub: the per-address limits count the client, not the proxy. Empty:
    # none (the peer is the client).
    forwarded_allow_ips: tuple[str, ...] = ()
    drain_timeout_s: float = 10.0
    # video (WHIP/WHEP)
    video_max_peers: int = 200  # publishers + viewers per process; beyond it WHIP/WHEP answer 503
    video_max_peers_per_ip: int = 20  # per client address; beyond it 429
    video_new_sessions_per_ip_s: float = 2.0  # new WHIP/WHEP sessions per address (burst 10)
    video_width: int = 640
    video_height: int = 360
    video_fps: int = 30
    video_bitrate: int = 1_000_000
    video_keyint_s: float = 2.0
    video_x264_preset: str = "veryfast"
    video_viewer_queue: int = 90  # packets per viewer (~3 s) before it restarts on a keyframe
    video_publisher_timeout_s: float = 3.0  # no frame this long: the publisher is lost
    video_reconnect_grace_s: float = 30.0  # lost publisher: time to come back before the end
    video_connect_timeout_s: float = 10.0  # a peer not connected (ICE + DTLS) by then is dropped
    video_ice_hosts: tuple[str, ...] = ()  # host candidates offered (empty: every interface)
    video_encode: VideoEncode = "shared"  # "per_viewer" exists only as the load test's baseline
    # recording every show as CMAF HLS from the shared encode (docs/recording.md)
    recording_enabled: bool = True
    recording_dir: Path | None = None  # None: data_dir/recordings
    recording_segment_s: float = 2.0  # target segment length (cut at keyframes)
    recording_part_s: float = 0.5  # low-latency HLS part target (0: no parts)
    recording_live_window: int = 15  # segments in the live playlist (0: every segment)
    recording_retention_days: float = 30.0  # ended recordings deleted after this (0: kept)
    recording_queue_packets: int = 600  # packets waiting for the muxing thread; beyond: dropped
    recording_store: ImageStoreKind = "disk"  # s3: ended recordings move to a bucket (extra `s3`)
    recording_s3_bucket: str | None = None  # needed with s3
    recording_s3_endpoint_url: str | None = None  # None: AWS; else e.g. a MinIO or R2 endpoint
    recording_s3_region: str | None = None
    recording_s3_prefix: str = "recordings/"
    # accounts: email sign-in, sessions (docs/accounts.md)
    smtp_url: str | None = None  # smtp://[user:pass@]host:port or smtps://...; None: log the mail
    mail_from: str = "livecart <no-reply@localhost>"
    mail_timeout_s: float = 10.0  # one SMTP delivery, connect to the end
    signin_code_ttl_s: int = 15 * 60  # a code and its link, from the mail's sending
    signin_max_attempts: int = 5  # wrong codes per challenge, then it is dead
    signin_limit_window_s: int = 15 * 60  # the window of the three sign-in rates below
    signin_per_email: int = 5  # sign-in mails per address per window
    signin_per_ip: int = 30  # sign-in mails asked per client address per window
    signin_verify_per_challenge: int = 10  # verify calls per challenge per window
    session_idle_s: int = 7 * 24 * 3600  # a session unused this long ends
    session_max_s: int = 30 * 24 * 3600  # and any session ends this long after sign-in
    ticket_ttl_s: int = 60  # the hub ticket a signed-in page gets
    # passkeys (WebAuthn) and the buy's passkey confirmation (docs/accounts.md)
    passkey_challenge_ttl_s: int = 300  # a ceremony's challenge; a confirmed buy's retries too
    passkeys_per_account: int = 10
    # follows and show alerts (docs/limits.md, "Follows and show alerts")
    follows_per_account: int = 1000  # creators one account may follow
    reminders_per_account: int = 200  # upcoming shows one account may RSVP to at once
    alert_batch: int = 100  # recipients read and mailed per step of a show's alert
    alert_mails_per_s: float = 20.0  # one node's pace of show-alert mails
    alert_max_recipients: int = 100_000  # recipients of one show's alert, beyond: not mailed
    passkey_signin_per_ip: int = 30  # passkey sign-in starts per client address per window
    passkey_options_per_account: int = 60  # registrations and buy confirmations asked, per window
    buy_confirm: BuyConfirm = "passkey"  # a page session's buys need the account's passkey, if it has one
    # invitations and teams (docs/accounts.md)
    invite_ttl_s: int = 7 * 24 * 3600  # an invitation link works this long after it is sent
    invite_keep_s: int = 30 * 24 * 3600  # and its record stays listed this long after that
    invite_limit_window_s: int = 3600  # the window of the two invitation rates below
    invite_per_scope: int = 50  # invitations one sender (the operators, a brand, a creator) sends
    invite_per_email: int = 5  # invitations one address receives
    team_max_members: int = 100  # accounts holding one grant (a brand's team, a creator's moderators)
    # chat (docs/chat.md, docs/limits.md "Chat")
    chat_per_viewer_s: float = 10.0  # ordinary messages a viewer is sent per second, sampled beyond
    chat_tick_ms: int = 250  # chat frames at most this often (with the state tick's write)
    chat_min_gap_ms: int = 1000  # least time between two messages of a viewer or a brand
    chat_staff_min_gap_ms: int = 250  # ... of the host or the moderators (their shared floor)
    chat_duplicate_window_s: int = 30  # the same text again within this is refused
    chat_log_max: int = 100_000  # messages kept per show (approximate), for the replay
    chat_backlog: int = 50  # recent messages in a joining socket's snapshot
    chat_held_max: int = 1000  # messages waiting for review per show
    # live auctions' money (docs/auctions.md): the closer on every node, the second chance
    auction_close_interval_s: float = 0.5  # how often a node looks for due auctions
    auction_close_batch: int = 100  # due auctions one look handles at most
    auction_second_chance_s: int = 900  # the runner-up's time to accept a second-chance offer
    auction_charge_retry_s: float = 5.0  # a charge whose outcome is unknown is looked at again
    # affiliate programs and the creator studio (docs/affiliates.md)
    program_max_applications: int = 10_000  # creators one brand's program keeps on record
    statement_max_rows: int = 100_000  # ledger entries in one earnings statement (a month)
    publish_token_ttl_s: int = 6 * 3600  # the creator token the studio gives OBS
    # outbound webhooks (docs/webhooks.md, docs/limits.md "Webhooks")
    webhook_allow_private: bool = False  # 1: targets on private/loopback addresses are allowed
    webhook_timeout_s: float = 10.0  # one delivery attempt, connect to the last byte read
    webhook_connect_timeout_s: float = 5.0
    webhook_response_max_bytes: int = 64 * 1024  # of a receiver's answer, the rest unread
    # The waits before each retry (s): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27.6 h in all)
    webhook_retry_schedule_s: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0,
                                                   36000.0, 36000.0)
    webhook_retry_jitter: float = 0.2  # each wait is stretched or shrunk by up to 20%
    webhook_disable_after_s: int = 5 * 24 * 3600  # failing this long without a success: disabled
    webhook_disable_failures: int = 1000  # or this many failed attempts in a row
    webhook_max_endpoints: int = 20  # per brand, and for the operator
    webhook_keep_s: int = 30 * 24 * 3600  # events and finished deliveries (the log, resends)
    webhook_log_keep: int = 1000  # deliveries listed per endpoint
    webhook_concurrency: int = 16  # deliveries in flight per node
    webhook_claim_idle_s: float = 60.0  # a crashed node's delivery is taken over after this
    webhook_rotation_grace_s: int = 24 * 3600  # a rotated secret still signs this long
    webhook_stock_low: int = 5  # stock.low: a buy leaves a variant at or below this
    # product images and show covers (docs/catalog.md): checked by content, re-encoded,
    # named by their hash
    image_max_bytes: int = 8 * 1024 * 1024  # one upload: 413 image-too-large beyond
    image_max_pixels: int = 16_777_216  # width x height (4096 x 4096): 422 beyond
    images_per_product: int = 10  # 409 too-many-images beyond (at most 50)
    image_dir: Path | None = None  # None: data_dir/images
    image_store: ImageStoreKind = "disk"  # s3: an S3-compatible bucket (extra `s3`, boto3)
    image_s3_bucket: str | None = None  # needed with s3
    image_s3_endpoint_url: str | None = None  # None: AWS; else e.g. a MinIO or R2 endpoint
    image_s3_region: str | None = None
    image_s3_prefix: str = "images/"
    # operational
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Build settings from LIVECART_* variables; explicit overrides (the CLI's) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}  # checked by validate()
        for name, kind in _FIELD_TYPES.items():
            raw = env.get(_ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(kind, raw, name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> "Settings":
        return replace(self, **changes)

    def validate(self) -> None:
        if self.durability not in ("appendfsync", "waitaof", "replicated"):
            raise ValueError("durability must be appendfsync, waitaof or replicated, "
                             f"not {self.durability!r}")
        if self.capture_mode not in ("immediate", "on_shipment"):
            raise ValueError(f"capture_mode must be immediate or on_shipment, not {self.capture_mode!r}")
        for name in ("max_body_bytes", "reservation_ttl_s", "idempotency_ttl_s", "max_quantity_per_buy",
                     "replica_ack_timeout_ms",
                     "http_header_timeout_s", "http_body_timeout_s", "http_max_header_bytes",
                     "http_keep_alive_s", "http_max_connections", "ws_open_timeout_s",
                     "demo_token_ttl_s", "mail_timeout_s", "signin_code_ttl_s",
                     "signin_max_attempts", "signin_limit_window_s", "signin_per_email",
                     "signin_per_ip", "signin_verify_per_challenge", "session_idle_s",
                     "session_max_s", "ticket_ttl_s", "passkey_challenge_ttl_s",
                     "passkeys_per_account", "passkey_signin_per_ip",
                     "passkey_options_per_account", "show_late_grace_s", "wallet_max_addresses",
                     "wallet_max_cards", "follows_per_account", "reminders_per_account",
                     "alert_batch", "alert_mails_per_s", "alert_max_recipients", "invite_ttl_s",
                     "invite_keep_s", "invite_limit_window_s", "invite_per_scope",
                     "invite_per_email", "team_max_members", "webhook_timeout_s",
                     "webhook_connect_timeout_s", "webhook_response_max_bytes",
                     "webhook_disable_after_s", "webhook_disable_failures",
                     "webhook_max_endpoints", "webhook_keep_s", "webhook_log_keep",
                     "webhook_concurrency", "webhook_claim_idle_s", "partitions",
                     "partition_lease_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("ws_outbox_bytes", "ws_slow_close_s", "ws_slow_drop_s",
                     "ws_new_per_ip_s", "ws_new_burst_per_ip"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("program_max_applications", "statement_max_rows", "publish_token_ttl_s",
                     "chat_per_viewer_s", "chat_tick_ms", "chat_min_gap_ms", "chat_duplicate_window_s",
                     "chat_staff_min_gap_ms",
                     "chat_log_max", "chat_backlog", "chat_held_max",
                     "auction_close_interval_s", "auction_close_batch",
                     "auction_second_chance_s", "auction_charge_retry_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.payments not in ("sandbox", "stripe"):
            raise ValueError(f"payments must be sandbox or stripe, not {self.payments!r}")
        if self.payments == "stripe" and not self.stripe_api_key:
            raise ValueError("payments=stripe needs LIVECART_STRIPE_API_KEY")
        if self.payments == "stripe" and not (self.stripe_publishable_key or "").startswith("pk_"):
            raise ValueError("payments=stripe needs LIVECART_STRIPE_PUBLISHABLE_KEY (pk_...), "
                             "for the pages' card form")
        if urlsplit(self.stripe_js_url).scheme not in ("https", "http"):
            raise ValueError("stripe_js_url must be an http(s) URL")
        if self.sandbox_max_tokens < 0:
            raise ValueError("sandbox_max_tokens must be >= 0")
        if self.buy_confirm not in ("passkey", "none"):
            raise ValueError(f"buy_confirm must be passkey or none, not {self.buy_confirm!r}")
        if self.hub_mode not in ("process", "inline"):
            raise ValueError(f"hub_mode must be process or inline, not {self.hub_mode!r}")
        if self.hub_restart_s < 0:
            raise ValueError("hub_restart_s must be >= 0")
        if self.sold_out_gate_ms < 0:
            raise ValueError("sold_out_gate_ms must be >= 0 (0: the gate is off)")
        if self.video_encode not in ("shared", "per_viewer"):
            raise ValueError(f"video_encode must be shared or per_viewer, not {self.video_encode!r}")
        for name in ("video_max_peers", "video_max_peers_per_ip", "video_new_sessions_per_ip_s",
                     "video_width", "video_height", "video_fps",
                     "video_bitrate", "video_viewer_queue"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not self.webhook_retry_schedule_s or min(self.webhook_retry_schedule_s) < 0:
            raise ValueError("webhook_retry_schedule_s must be one or more waits >= 0")
        if not 0 <= self.webhook_retry_jitter < 1:
            raise ValueError("webhook_retry_jitter must be in [0, 1)")
        if self.webhook_stock_low < 0 or self.webhook_rotation_grace_s < 0:
            raise ValueError("webhook_stock_low and webhook_rotation_grace_s must be >= 0")
        if not (self.recording_part_s == 0
                or 0.2 <= self.recording_part_s <= self.recording_segment_s / 2):
            raise ValueError("recording_part_s must be 0 (no parts) or between 0.2 s and "
                             "half of recording_segment_s")
        if self.recording_segment_s < 0.5 or self.recording_queue_packets <= 0 \
                or self.recording_live_window < 0 or self.recording_retention_days < 0:
            raise ValueError("recording_segment_s must be >= 0.5, recording_queue_packets "
                             "positive, recording_live_window and recording_retention_days >= 0")
        for name in ("image_max_bytes", "image_max_pixels", "images_per_product"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.images_per_product > 50:
            raise ValueError("images_per_product is at most 50")
        if self.recording_store not in ("disk", "s3"):
            raise ValueError(f"recording_store must be disk or s3, not {self.recording_store!r}")
        if self.recording_store == "s3" and not self.recording_s3_bucket:
            raise ValueError("recording_store=s3 needs recording_s3_bucket")
        if self.image_store not in ("disk", "s3"):
            raise ValueError(f"image_store must be disk or s3, not {self.image_store!r}")
        if self.image_store == "s3" and not self.image_s3_bucket:
            raise ValueError("image_store=s3 needs LIVECART_IMAGE_S3_BUCKET")
        if self.public_ws_url is not None and urlsplit(self.public_ws_url).scheme not in ("ws", "wss"):
            raise ValueError("public_ws_url must be a ws:// or wss:// URL")
        for proxy in self.forwarded_allow_ips:
            try:
                ipaddress.ip_network(proxy)
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {proxy!r} is not an address or network") from None
        if self.drain_delay_s < 0 or self.drain_timeout_s <= 0:
            raise ValueError("drain_delay_s must be >= 0 and drain_timeout_s positive")
        if self.video_width % 2 or self.video_height % 2:
            raise ValueError("video_width and video_height must be even (4:2:0 chroma)")

    @property
    def hub_port(self) -> int:
        return self.ws_port if self.ws_port is not None else (self.port + 1 if self.port else 0)

    def origins(self) -> tuple[str, ...]:
        """The Origin allowlist for sockets: configured, or this node's own pages."""
        if self.allowed_origins:
            return self.allowed_origins
        return (self.base_url, f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}")

    @property
    def recordings_path(self) -> Path:
        return (self.recording_dir if self.recording_dir is not None
                else Path(self.data_dir) / "recordings")

    @property
    def images_path(self) -> Path:
        return self.image_dir if self.image_dir is not None else Path(self.data_dir) / "images"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def _parse(kind: str, raw: str, name: str) -> object:
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind == "path":
            return Path(raw)
        if kind == "tuple":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind == "floats":
            return tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"{_ENV_PREFIX}{name.upper()}: {exc}") from None
    return raw


_FIELD_TYPES: dict[str, str] = {
    "host": "str", "port": "int", "redis_url": "str", "data_dir": "path", "demo": "bool",
    "jwt_secret": "str", "public_url": "str", "allowed_origins": "tuple",
    "demo_token_ttl_s": "int",
    "max_body_bytes": "int", "page_size_max": "int", "http_header_timeout_s": "float",
    "http_body_timeout_s": "float", "http_max_header_bytes": "int", "http_keep_alive_s": "float",
    "http_max_connections": "int", "durability": "str", "replica_ack_timeout_ms": "int", "capture_mode": "str",
    "reservation_ttl_s": "int", "idempotency_ttl_s": "int", "attribution_window_s": "int",
    "cart_hold_s": "int", "waitlist_hold_s": "int", "max_quantity_per_buy": "int", "sold_out_gate_ms": "int",
    "payment_window_s": "float",
    "max_pinned": "int", "deal_viewer_delay_max_ms": "int", "show_late_grace_s": "int", "payment_timeout_s": "float", "capture_owed_after_s": "int",
    "sweep_interval_s": "float", "partitions": "int", "partition_lease_s": "float",
    "log_level": "str",
    "auction_close_interval_s": "float", "auction_close_batch": "int",
    "auction_second_chance_s": "int", "auction_charge_retry_s": "float",
    "payments": "str", "sandbox_max_tokens": "int", "stripe_api_key": "str",
    "stripe_webhook_secret": "str", "stripe_api_base": "str",
    "stripe_publishable_key": "str", "stripe_js_url": "str",
    "wallet_max_addresses": "int", "wallet_max_cards": "int", "api_keys_per_brand": "int",
    "ws_port": "int", "hub_mode": "str", "hub_restart_s": "float", "ws_outbox_bytes": "int", "ws_slow_close_s": "float",
    "ws_slow_drop_s": "float", "ws_tick_ms": "int",
    "ws_max_per_ip": "int", "ws_max_per_token": "int", "ws_new_per_ip_s": "float",
    "ws_new_burst_per_ip": "int", "ws_message_rate": "float",
    "ws_ping_interval_s": "float", "ws_sndbuf_bytes": "int", "ws_open_timeout_s": "float",
    "public_ws_url": "str", "drain_delay_s": "float", "drain_timeout_s": "float",
    "forwarded_allow_ips": "tuple",
    "video_max_peers": "int", "video_max_peers_per_ip": "int",
    "video_new_sessions_per_ip_s": "float", "video_width": "int", "video_height": "int",
    "video_fps": "int",
    "video_bitrate": "int", "video_keyint_s": "float", "video_x264_preset": "str",
    "video_viewer_queue": "int", "video_publisher_timeout_s": "float",
    "video_reconnect_grace_s": "float", "video_connect_timeout_s": "float",
    "video_ice_hosts": "tuple", "video_encode": "str",
    "recording_enabled": "bool", "recording_dir": "path", "recording_segment_s": "float",
    "recording_part_s": "float",
    "recording_live_window": "int", "recording_retention_days": "float",
    "recording_queue_packets": "int", "recording_store": "str", "recording_s3_bucket": "str",
    "recording_s3_endpoint_url": "str", "recording_s3_region": "str",
    "recording_s3_prefix": "str",
    "smtp_url": "str", "mail_from": "str", "mail_timeout_s": "float",
    "signin_code_ttl_s": "int", "signin_max_attempts": "int", "signin_limit_window_s": "int",
    "signin_per_email": "int", "signin_per_ip": "int", "signin_verify_per_challenge": "int",
    "session_idle_s": "int", "session_max_s": "int", "ticket_ttl_s": "int",
    "passkey_challenge_ttl_s": "int", "passkeys_per_account": "int",
    "passkey_signin_per_ip": "int", "passkey_options_per_account": "int", "buy_confirm": "str",
    "follows_per_account": "int", "reminders_per_account": "int", "alert_batch": "int",
    "alert_mails_per_s": "float", "alert_max_recipients": "int",
    "invite_ttl_s": "int", "invite_keep_s": "int", "invite_limit_window_s": "int",
    "invite_per_scope": "int", "invite_per_email": "int", "team_max_members": "int",
    "webhook_allow_private": "bool", "webhook_timeout_s": "float",
    "webhook_connect_timeout_s": "float", "webhook_response_max_bytes": "int",
    "webhook_retry_schedule_s": "floats", "webhook_retry_jitter": "float",
    "webhook_disable_after_s": "int", "webhook_disable_failures": "int",
    "webhook_max_endpoints": "int", "webhook_keep_s": "int", "webhook_log_keep": "int",
    "webhook_concurrency": "int", "webhook_claim_idle_s": "float",
    "webhook_rotation_grace_s": "int", "webhook_stock_low": "int",
    "image_max_bytes": "int", "image_max_pixels": "int", "images_per_product": "int",
    "image_dir": "path", "image_store": "str", "image_s3_bucket": "str",
    "image_s3_endpoint_url": "str", "image_s3_region": "str", "image_s3_prefix": "str",
}
