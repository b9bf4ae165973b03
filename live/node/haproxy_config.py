"""deploy/haproxy.cfg, rendered for a given front address and set of nodes.

One renderer for `livecart cluster --nodes N` and the HAProxy test, so both run the shipped
example itself, not a copy that could drift from it. The example names two nodes
(node1, node2); each backend's `server node1 ...` line is the pattern for every node (the
`hub` backend points at a node's --ws-port, the others at its HTTP --port), the other
`server` lines are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TEMPLATE", "render_haproxy_config"]

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"

_BACKEND = re.compile(r"^backend (\S+)")
_SERVER = re.compile(r"^(\s+)server node(\d+) \S+?:\d+(.*)$")
_BIND = re.compile(r"^(\s+)bind :8080$", re.MULTILINE)
_INTER = re.compile(r"(default-server inter )\S+")
_MAXCONN = re.compile(r"^(\s+maxconn )\d+$", re.MULTILINE)


def render_haproxy_config(template: str, *, front: str, nodes: Sequence[tuple[int, int]],
                          host: str = "127.0.0.1", check_interval: str | None = None,
                          maxconn: int | None = None) -> str:
    """`template` (deploy/haproxy.cfg's text) bound on `front` ("127.0.0.1:8080") in front
    of `nodes`, each (HTTP port, hub port) on `host`, named node1..nodeN. `check_interval`
    ("100ms") and `maxconn` replace the example's when given. ValueError if the template no
    longer has what is replaced (the example changed: change this with it)."""
    if not nodes:
        raise ValueError("no nodes to put behind HAProxy")
    text, bound = _BIND.subn(lambda m: f"{m[1]}bind {front}", template)
    if bound != 1:
        raise ValueError("haproxy.cfg: no single `bind :8080` line to replace")
    if check_interval is not None:
        text, n = _INTER.subn(lambda m: m[1] + check_interval, text)
        if n != 1:
            raise ValueError("haproxy.cfg: no `default-server inter ...` line")
    if maxconn is not None:
        text, n = _MAXCONN.subn(lambda m: f"{m[1]}{maxconn}", text)
        if n != 1:
            raise ValueError("haproxy.cfg: no global `maxconn` line")
    out: list[str] = []
    backend, servers = "", 0
    for line in text.splitlines():
        if match := _BACKEND.match(line):
            backend = match[1]
        elif match := _SERVER.match(line):
            servers += 1
            if match[2] == "1":
                for i, (http_port, ws_port) in enumerate(nodes, start=1):
                    port = ws_port if backend == "hub" else http_port
                    rest = match[3].replace("http/node1", f"http/node{i}")
                    out.append(f"{match[1]}server node{i} {host}:{port}{rest}")
            continue
        out.append(line)
    if not servers:
        raise ValueError("haproxy.cfg: no `server node1 ...` lines")
    return "\n".join(out) + "\n"
