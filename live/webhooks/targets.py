"""Where a webhook may be sent: SSRF checks on the URL and on every address its host has.

A target is resolved once per attempt and the request goes to the very address that was
checked (the URL's host becomes that IP; `Host` and TLS SNI keep the name), so a DNS answer
that changes between the check and the connect (rebinding) cannot reach an internal host.
Private, loopback, link-local, multicast, reserved and unspecified addresses, IPv4 and IPv6,
IPv4-mapped and NAT64/6to4/Teredo-embedded ones included, are refused unless the operator
allows them (`LIVECART_WEBHOOK_ALLOW_PRIVATE=1`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from checkout.errors import Refused

__all__ = ["Target", "TargetRefused", "check_url", "resolve", "is_public", "MAX_URL_LENGTH"]

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Refused):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "webhook-target-refused", detail)


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL  # with the checked IP address as its host
    host_header: str  # the URL's own host[:port]
    sni: str  # the name TLS checks the certificate against


def check_url(raw: str) -> httpx.URL:
    """An http(s) URL with a host and no credentials, or TargetRefused."""
    if len(raw) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, ValueError):
        raise TargetRefused("not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise TargetRefused("the URL must be http:// or https:// with a host")
    if url.userinfo:
        raise TargetRefused("the URL must not carry credentials")
    return url


def _embedded(ip: IPAddress) -> IPAddress | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """A globally routable unicast address (and so is any IPv4 address it embeds)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public(ip.ipv4_mapped)  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
    inner = _embedded(ip)
    if inner is not None and not is_public(inner):
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(f"the host {host} does not resolve ({exc.strerror or exc})") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def resolve(raw: str, *, allow_private: bool) -> Target:
    """The address to send to, checked; TargetRefused if the URL or any address of its
    host is not allowed (one private address among public ones is enough to refuse)."""
    url = check_url(raw)
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = await _addresses(url.host, port)
    if not addresses:
        raise TargetRefused(f"the host {url.host} has no address")
    if not allow_private:
        for ip in addresses:
            if not is_public(ip):
                raise TargetRefused(f"{url.host} is a private, loopback or reserved address "
                                    f"({ip}); webhooks go to public addresses only")
    netloc = url.netloc.decode("ascii")
    return Target(url.copy_with(host=str(addresses[0])), netloc, url.host)
