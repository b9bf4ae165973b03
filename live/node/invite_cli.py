"""`livecart invite`: the operator's way in on a fresh install (the first operator, brand
admin or creator), before anyone can invite from a page.

Like `livecart doctor` it mints a one-minute operator token with the node's secret and asks
the running node: `POST /api/v1/invitations`. The node mails the link (or logs it without
LIVECART_SMTP_URL) and this prints it too. Exit 0 when invited, 1 when the node refused
(the problem is printed), 2 when the node could not be asked.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from live.settings import Settings

__all__ = ["add_invite_args", "run_invite"]

_TOKEN_TTL_S = 60


def add_invite_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("invite", help="invite someone by email (operator tool)")
    p.add_argument("--email", required=True, help="the address the invitation is mailed to")
    p.add_argument("--grant", required=True,
                   help="operator:NAME, brand:BRAND, creator:CREATOR or moderator:CREATOR")
    p.add_argument("--brand-role", choices=["admin", "member"],
                   help="for a brand grant (default admin)")
    p.add_argument("--brand-name", help="make the brand with the invitation, with this name")
    p.add_argument("--currency", default="USD", help="the new brand's currency (default USD)")
    p.add_argument("--url", help="the node's HTTP address (default http://HOST:PORT)")
    p.add_argument("--host", help="the node's address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="the node's HTTP port (default 8000)")
    p.add_argument("--data-dir", type=Path, help="the node's data dir (holds jwt.secret)")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"email": args.email, "grant": args.grant}
    if args.grant.startswith("brand:"):
        body["brand_role"] = args.brand_role or "admin"
        if args.brand_name:
            body["brand"] = {"name": args.brand_name, "currency": args.currency}
    elif args.brand_role:
        body["brand_role"] = args.brand_role  # the node says why not
    return body


def run_invite(args: argparse.Namespace, settings: Settings) -> int:
    from live.accounts.auth import Role, TokenAuthority, secret_from_env_or_file
    authority = TokenAuthority(secret_from_env_or_file(settings.data_dir, settings.jwt_secret))
    token = authority.mint(Role.OPERATOR, "cli", ttl_s=_TOKEN_TTL_S)
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    try:
        r = httpx.post(f"{url}/api/v1/invitations", json=_body(args), timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        print(f"livecart: could not reach {url}: {exc}")
        return 2
    if r.status_code != 201:
        try:
            problem = r.json()
            why = f"{problem.get('title')}: {problem.get('detail')}"
        except ValueError:
            why = r.text[:500]
        print(f"livecart: {url} refused the invitation ({r.status_code}) {why}")
        return 1 if 400 <= r.status_code < 500 else 2
    invitation = r.json()
    print(f"Invited {invitation['email']} as {invitation['what']}.")
    print(f"  link     {invitation['url']}")
    expires = time.localtime(invitation["expires_ms"] / 1000)
    print(f"  expires  {time.strftime('%Y-%m-%d %H:%M %Z', expires)}")
    print("  mailed by the node (or written to its log when it has no LIVECART_SMTP_URL); "
          f"sign in as {invitation['email']} to accept")
    print(f"  id       {invitation['id']} (revoke: DELETE /api/v1/invitations/{invitation['id']})")
    return 0
