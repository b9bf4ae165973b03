"""The `livecart` command: serve, mint tokens, invite, reconcile, run a local cluster,
run load tests."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from live.node.hub_process import HubProcess
    from live.node.services import Services
    from live.settings import Settings

__all__ = ["main", "PLUGIN_GROUP"]

PLUGIN_GROUP = "livecart.commands"


def _serve_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="start a livecart node (embedded Valkey by default)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--ws-port", type=int, help="WebSocket hub port (default: HTTP port + 1)")
    p.add_argument("--hub", dest="hub_mode", choices=["process", "inline"],
                   help="the hub in its own process (default) or in the HTTP API's")
    p.add_argument("--redis-url", help="external Valkey/Redis 7.2+ (default: embedded)")
    p.add_argument("--data-dir", type=Path, help="where the embedded Valkey and the secret live")
    p.add_argument("--demo", action="store_true", default=None, help="seed demo data, print tokens")
    p.add_argument("--durability", choices=["appendfsync", "waitaof", "replicated"])
    p.add_argument("--capture", dest="capture_mode", choices=["immediate", "on_shipment"])
    p.add_argument("--access-log", action="store_true",
                   help="log every request (off by default: it costs ~15%% at full load)")


def _token_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="mint a signed token (operator tool)")
    p.add_argument("role", choices=["operator", "brand", "creator", "buyer"])
    p.add_argument("subject", help="the brand, creator or buyer id (operator: a name)")
    p.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default 1 day)")
    p.add_argument("--data-dir", type=Path, help="the server's data dir (holds jwt.secret)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecart", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_args(sub)
    _token_args(sub)
    from live.node.doctor import add_doctor_args, run_doctor
    from live.node.invite_cli import add_invite_args, run_invite
    from live.node.cluster_cli import add_cluster_args, run_cluster
    add_doctor_args(sub)
    add_invite_args(sub)
    add_cluster_args(sub)
    plugins = _plugins()
    for plugin in plugins.values():
        plugin.add_args(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "token":
        return _token(args)
    if args.command == "doctor":
        return run_doctor(args, _settings(args))
    if args.command == "invite":
        return run_invite(args, _settings(args))
    if args.command == "cluster":
        return run_cluster(args)
    return int(plugins[args.command].run(args))


def _plugins() -> dict[str, Any]:
    """Commands other distributions (or extras) add: `livecart loadtest` comes from the
    `loadtest` package this way, so nothing in the product imports it. Each entry point in
    the group names a module with `add_args(subparsers)` and `run(args) -> int`."""
    return {ep.name: ep.load() for ep in entry_points(group=PLUGIN_GROUP)}


def _settings(args: argparse.Namespace) -> Settings:
    from live.settings import Settings
    overrides = {k: v for k, v in vars(args).items()
                 if k in Settings.__dataclass_fields__ and v is not None}
    return Settings.from_env(**overrides)


def _token(args: argparse.Namespace) -> int:
    from live.accounts.auth import Role, TokenAuthority, secret_from_env_or_file
    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    authority = TokenAuthority(secret_from_env_or_file(settings.data_dir, settings.jwt_secret))
    print(authority.mint(Role(args.role), args.subject, ttl_s=args.ttl))
    return 0


def _raise_open_files_limit() -> None:
    """A hub holds one file per socket: use the hard limit, not the (often 1024) soft one."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _serve(args: argparse.Namespace) -> int:
    _raise_open_files_limit()
    try:
        settings = _settings(args)
    except ValueError as exc:
        print(f"livecart: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("aioice", "aiortc"):  # several INFO lines per viewer connecting
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    from live.node.valkey_server import DataDirInUse
    try:
        # uvicorn's loop="uvloop" only applies when uvicorn makes the loop; here we do.
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run_server(settings, access_log=args.access_log))
    except KeyboardInterrupt:
        pass
    except DataDirInUse as exc:
        holder = f"pid {exc.holder_pid}" if exc.holder_pid else "another process"
        print(f"livecart: data dir {settings.data_dir} is in use by another livecart node "
              f"({holder}); stop it first, or pass another --data-dir", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:  # refused to start: say why, plainly
        print(f"livecart: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run_server(settings: Settings, *, access_log: bool = False) -> None:
    from rich.console import Console

    from live.node.app import create_app
    from live.node.drain import DrainingServer, drain
    from live.accounts.auth import install_token_redaction
    from live.accounts.mail import SmtpMailer
    from live.node.http_server import server_config
    from live.node.hub_process import HubProcess, open_hub
    from live.node.services import Services, freeze_heap

    services = await Services.start(settings)
    console = Console()
    hub: HubProcess | None = None
    try:
        ws_port, hub = await open_hub(services)
        app = create_app(settings, services=services, hub_process=hub)
        config = server_config(app, settings, host=settings.host, port=settings.port,
                               log_level=settings.log_level, access_log=access_log)
        server = DrainingServer(config, lambda: drain(services, hub))  # SIGTERM drains first
        freeze_heap()
        install_token_redaction([logging.getLogger(n) for n in
                                 ("", "uvicorn", "uvicorn.access", "uvicorn.error")])
        base = settings.base_url
        ws_base = base.replace("http", "ws", 1).rsplit(":", 1)[0] + f":{ws_port}"
        where = f"its own process, pid {hub.pid}" if hub is not None else "inline"
        console.print(f"[bold green]livecart[/] listening on [link]{base}[/]")
        console.print(f"  hub      {ws_base}/ws/streams/<stream id>   ({where})", soft_wrap=True)
        console.print(f"  API      {base}/api/v1/openapi.json")
        console.print(f"  health   {base}/healthz   metrics {base}/metrics")
        console.print(f"  Valkey   {'embedded, data in ' + str(settings.data_dir) if services.valkey else settings.redis_url}")
        if settings.demo:
            from live.node.demo import seed_demo
            demo = await seed_demo(services)
            t = demo.tokens
            console.print(f"  storefront   {base}/   creator page {base}/c/cleo")
            console.print("[bold]Open[/] (the token rides in the URL fragment, never sent to the server):")
            console.print(f"  viewer       {base}/s/{demo.stream_id}#token={t['buyer bob']}", soft_wrap=True)
            console.print(f"  host console {base}/host/{demo.stream_id}#token={t['creator cleo']}", soft_wrap=True)
            console.print(f"  OBS source   {base}/obs/{demo.stream_id}")
            console.print(f"  OBS WHIP     server {base}/api/v1/streams/{demo.stream_id}/whip"
                          f"  bearer token: the creator cleo token below", soft_wrap=True)
            console.print(f"  brand        {base}/brand/acme#token={t['brand acme']}", soft_wrap=True)
            console.print(f"  creator      {base}/creator/cleo#token={t['creator cleo']}", soft_wrap=True)
            console.print(f"  studio       {base}/studio/cleo#token={t['creator cleo']}", soft_wrap=True)
            console.print(f"  program      {base}/brand/acme/program#token={t['brand acme']}", soft_wrap=True)
            mail = (f"the code is mailed through {services.mailer.where}"
                    if isinstance(services.mailer, SmtpMailer) else
                    "no LIVECART_SMTP_URL, so the mail with its code and link is logged here")
            console.print(f"  sign in      {base}/signin with any email address ({mail}); "
                          f"or tap Buy on the viewer page without the token", soft_wrap=True)
            console.print(f"  signed in    {base}/me/wallet (addresses, cards), {base}/me/orders",
                          soft_wrap=True)
            # A passkey's site is a host name, never an IP address (WebAuthn's RP ID).
            named = base.replace("://127.0.0.1:", "://localhost:")
            console.print(f"  passkeys     signed in, add one at {named}/signin: it signs in "
                          "and confirms each buy with one tap", soft_wrap=True)
            for grant, (email, link) in demo.invitations.items():
                console.print(f"  invitation   {grant} for {email}: {link} (sign in as "
                              f"{email} to accept)", soft_wrap=True)
            console.print(f"  demo stream  {base}/api/v1/streams/{demo.stream_id}")
            for pid in demo.product_ids:
                console.print(f"  demo product {base}/p/{pid}")
            for who, token in t.items():
                console.print(f"  token {who:<13} {token}", soft_wrap=True)
            console.print(f"  tokens expire at {_clock(demo.tokens_expire_at)} (in "
                          f"{_duration(settings.demo_token_ttl_s)}, LIVECART_DEMO_TOKEN_TTL_S); "
                          f"mint new ones with: livecart token ROLE SUBJECT --data-dir "
                          f"{settings.data_dir}", soft_wrap=True)
        await server.serve()
    finally:
        await _close_for_sure(services, hub)


async def _close_for_sure(services: Services, hub: HubProcess | None) -> None:
    """Stop the hub process, then close every service, even if this task is cancelled
    meanwhile. uvicorn re-raises the
    SIGINT it handled once it has shut down, and asyncio.Runner answers that by cancelling
    this task: a close cut short leaves loops running, and Runner.close() then waits for
    them forever (Python 3.11 can swallow a cancel inside wait_for; see checkout/tasks.py).
    The hub goes first: its Valkey clients must not outlive the embedded Valkey."""

    async def close() -> None:
        if hub is not None:
            await hub.stop()
        await services.close()

    closing = asyncio.ensure_future(close())
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            continue  # keep closing: it is bounded, and nothing else may outlive it
    closing.result()


def _clock(unix_s: int) -> str:
    return time.strftime("%H:%M %Z", time.localtime(unix_s))


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
