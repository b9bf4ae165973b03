"""`livecart doctor`: ask a running node to reconcile money and stock, and print the answer.

It mints a one-minute operator token with the node's secret (as `livecart token` does) and
calls `GET /api/v1/ops/reconcile`; the exit code is 0 when nothing is out of step, 1 when
something is, 2 when the node could not be asked.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from live.settings import Settings

__all__ = ["add_doctor_args", "run_doctor"]

_TOKEN_TTL_S = 60


def add_doctor_args(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor", help="reconcile orders with the gateway, stock and totals")
    p.add_argument("--url", help="the node's HTTP address (default http://HOST:PORT)")
    p.add_argument("--host", help="the node's address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="the node's HTTP port (default 8000)")
    p.add_argument("--data-dir", type=Path, help="the node's data dir (holds jwt.secret)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from live.accounts.auth import Role, TokenAuthority, secret_from_env_or_file
    authority = TokenAuthority(secret_from_env_or_file(settings.data_dir, settings.jwt_secret))
    token = authority.mint(Role.OPERATOR, "doctor", ttl_s=_TOKEN_TTL_S)
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    console = Console()
    try:
        r = httpx.get(f"{url}/api/v1/ops/reconcile", timeout=120,
                      headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        console.print(f"[red]could not reach {url}: {exc}[/red]")
        return 2
    if r.status_code != 200:
        console.print(f"[red]{url} answered {r.status_code}: {r.text[:500]}[/red]")
        return 2
    report = r.json()
    if args.json:
        console.print_json(r.text)
    else:
        _print(console, report)
    return 0 if report["ok"] else 1


def _print(console: Console, report: dict[str, Any]) -> None:
    verdict = "[green]in step[/green]" if report["ok"] else "[red]OUT OF STEP[/red]"
    console.print(f"{report['orders']} orders, {report['products']} products: {verdict}")
    for title, rows in (("mismatches", report["mismatches"]), ("pending", report["pending"])):
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})")
        for column in ("kind", "subject", "detail"):
            table.add_column(column)
        for row in rows[:200]:
            table.add_row(row["kind"], row["subject"], row["detail"])
        console.print(table)
