"""Which local addresses WebRTC offers as ICE host candidates.

aioice offers every interface address but loopback. A server usually wants one: its public
address (or the one its load balancer forwards to), and the tests and load tests want
127.0.0.1 so that no media leaves loopback. aioice has no setting for this, so the process
replaces its address lookup once, at start; it applies to every peer in the process.
"""

from __future__ import annotations

import aioice.ice

__all__ = ["restrict_ice_hosts"]

_original = aioice.ice.get_host_addresses


def restrict_ice_hosts(addresses: tuple[str, ...]) -> None:
    """Offer only `addresses` as host candidates; an empty tuple restores aioice's choice."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = host_addresses
