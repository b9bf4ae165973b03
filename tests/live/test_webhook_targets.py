"""Which webhook targets are allowed (live/webhooks/targets.py): no I/O but the resolver's
look-up of `localhost`; and the backoff schedule (live/webhooks/dispatcher.py)."""

from __future__ import annotations

import ipaddress
import random

import pytest

from live.settings import Settings
from live.webhooks.dispatcher import backoff_s
from live.webhooks.targets import TargetRefused, is_public, resolve


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::",
    "fe80::1", "fc00::1", "fd12::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1", "::127.0.0.1"])
def test_private_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:93.184.215.14"])
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::1]:8080/x",
                                 "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/",
                                 "http://10.0.0.7/", "http://localhost/"])
async def test_private_targets_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        await resolve(url, allow_private=False)
    assert refused.value.status == 422 and refused.value.kind == "webhook-target-refused"
    target = await resolve(url, allow_private=True)
    assert ipaddress.ip_address(target.url.host).is_loopback or not is_public(
        ipaddress.ip_address(target.url.host))


async def test_the_request_goes_to_the_address_checked() -> None:
    target = await resolve("https://93.184.215.14:8443/hook?x=1", allow_private=False)
    assert (str(target.url), target.host_header, target.sni) == (
        "https://93.184.215.14:8443/hook?x=1", "93.184.215.14:8443", "93.184.215.14")
    target = await resolve("http://localhost:9/h", allow_private=True)
    assert target.host_header == "localhost:9" and target.sni == "localhost"
    assert target.url.host in ("127.0.0.1", "::1") and target.url.port == 9
    v6 = await resolve("http://[::1]:9/h", allow_private=True)
    assert str(v6.url) == "http://[::1]:9/h"


@pytest.mark.parametrize("url", ["ftp://example.com/", "http://user:pw@example.com/", "x",
                                 "http:///nohost", "https://" + "a" * 2050 + ".com/"])
async def test_malformed_targets_are_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(TargetRefused):
        await resolve(url, allow_private=True)


def test_backoff_follows_the_schedule_within_its_jitter_then_gives_up() -> None:
    schedule = (5.0, 300.0, 1800.0)
    rng = random.Random(7)
    for attempt, base in enumerate(schedule, start=1):
        for _ in range(100):
            wait = backoff_s(schedule, attempt, 0.2, rng)
            assert wait is not None and base * 0.8 <= wait <= base * 1.2
    assert backoff_s(schedule, len(schedule) + 1, 0.2, rng) is None
    assert backoff_s(schedule, 2, 0.0, rng) == 300.0


def test_webhook_settings_from_the_environment() -> None:
    s = Settings.from_env({"LIVECART_WEBHOOK_RETRY_SCHEDULE_S": "1, 2.5,600",
                           "LIVECART_WEBHOOK_ALLOW_PRIVATE": "1"})
    assert s.webhook_retry_schedule_s == (1.0, 2.5, 600.0) and s.webhook_allow_private
    assert sum(Settings().webhook_retry_schedule_s) >= 24 * 3600  # docs/limits.md: over a day
    for bad in ("", "-1", "x"):
        with pytest.raises(ValueError):
            Settings.from_env({"LIVECART_WEBHOOK_RETRY_SCHEDULE_S": bad or ","})
