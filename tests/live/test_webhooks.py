"""Outbound webhooks against a real HTTP receiver (tests/hook_receiver.py): signed in the
Standard Webhooks format (checked with the reference library's `Webhook.verify`), retried
after 500s and timeouts, in order per resource, each brand's to its own endpoints only,
SSRF refusals, the delivery log, resend, disable and enable (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conftest import Live
from hook_receiver import Hit, Receiver, receiver  # noqa: F401 - the fixture
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from shop import buy, eventually, give_wallet, make_brand, make_live_stream, make_product, make_stream

from checkout.webhook_events import EventType
from live.accounts.accounts import Grant
from live.accounts.auth import Role
from live.accounts.teams import Member

FAST = dict(webhook_allow_private=True, webhook_retry_schedule_s=(0.05, 0.05, 0.05),
            webhook_retry_jitter=0.0, webhook_timeout_s=1.0, webhook_claim_idle_s=1.0)


@pytest.fixture
def extra() -> dict[str, Any]:
    return {}


@pytest.fixture
def node_settings(smtp: Inbox, extra: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    return {**FAST, "smtp_url": smtp.url, **extra}


async def register(live: Live, url: str, events: list[str], brand: str = "acme",
                   role: str = "brand") -> dict[str, Any]:
    path = "/api/v1/webhooks" if role == "operator" else f"/api/v1/brands/{brand}/webhooks"
    subject = "ops" if role == "operator" else brand
    r = await live.http.post(path, headers=live.auth(role, subject),
                             json={"url": url, "events": events, "description": "test"})
    assert r.status_code == 201, r.text
    endpoint = r.json()
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


async def deliveries(live: Live, endpoint: dict[str, Any], brand: str = "acme") -> list[Any]:
    r = await live.http.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries",
                            headers=live.auth("brand", brand) if brand else live.auth("operator", "ops"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def verified(hit: Hit, secret: str) -> Any:
    """The payload, if the reference algorithm accepts its signature (raises otherwise)."""
    return Webhook(secret).verify(hit.body, hit.headers)


async def sold_order(live: Live, product: dict[str, Any], stream: dict[str, Any],
                     buyer: str = "bob") -> str:
    await give_wallet(live, buyer)
    r = await buy(live, buyer, product["id"], stream=stream["id"])
    assert r.status_code == 201, r.text
    return str(r.json()["order"]["id"])


async def shop(live: Live, brand: str = "acme", stock: int = 10) -> tuple[dict[str, Any], dict[str, Any]]:
    await make_brand(live, brand)
    product = await make_product(live, brand, sku=f"{brand}-1", stock=stock)
    stream = await make_live_stream(live, [product["id"]], creator=f"{brand}-host")
    return product, stream


async def test_a_paid_order_is_delivered_signed_and_logged(live: Live, receiver: Receiver) -> None:
    product, stream = await shop(live)
    endpoint = await register(live, f"{receiver.url}/ok", ["order.paid"])
    listed = (await live.http.get("/api/v1/brands/acme/webhooks",
                                  headers=live.auth("brand", "acme"))).json()["items"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0] and endpoint["secret"] not in str(listed)

    order = await sold_order(live, product, stream)
    [hit] = await receiver.wait("/ok", 1)
    payload = verified(hit, endpoint["secret"])
    assert payload["type"] == "order.paid" and payload["version"] == 1
    assert payload["id"] == hit.headers["webhook-id"]
    assert payload["data"]["id"] == order and payload["data"]["brand"] == "acme"
    assert payload["data"]["amount_minor"] == 5000 and "buyer" not in payload["data"]
    assert hit.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        verified(hit, "whsec_" + "QUJD" * 11)  # another secret does not verify it

    [log] = await eventually(lambda: _delivered(live, endpoint), "the delivery logged")
    assert (log["type"], log["attempts"], log["last_status"]) == ("order.paid", 1, 200)
    assert log["resource"] == f"order:{order}"


async def _delivered(live: Live, endpoint: dict[str, Any], brand: str = "acme") -> list[Any]:
    items = await deliveries(live, endpoint, brand)
    return items if items and all(d["status"] == "delivered" for d in items) else []


async def test_retries_after_500s_and_timeouts_with_the_same_id(live: Live,
                                                                 receiver: Receiver) -> None:
    product, stream = await shop(live)
    endpoint = await register(live, f"{receiver.url}/flaky", ["order.paid"])
    receiver.plan["/flaky"] = [500, "hang", 503]
    await sold_order(live, product, stream)
    hits = await receiver.wait("/flaky", 4)
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    for hit in hits:
        verified(hit, endpoint["secret"])
    [log] = await eventually(lambda: _delivered(live, endpoint), "delivered on the 4th attempt")
    assert log["attempts"] == 4 and log["last_status"] == 200


async def brand_admin(live: Live, email: str, brand: str = "acme") -> None:
    """An account on the brand's team as an admin (as an accepted invitation leaves it)."""
    account, _ = await live.services.accounts.sign_in(email)
    grant = Grant(Role.BRAND, brand)
    await live.services.teams.add(grant, Member(account.id, "admin", 0, "inv_test"))
    await live.services.accounts.grant(account.id, grant)


@pytest.mark.parametrize("extra", [{"webhook_disable_failures": 4}])
async def test_a_spent_schedule_gives_up_disables_and_resend_delivers(
        live: Live, receiver: Receiver, smtp: Inbox) -> None:  # noqa: F811
    product, stream = await shop(live)
    await brand_admin(live, "boss@acme.example")
    endpoint = await register(live, f"{receiver.url}/down", ["order.paid"])
    receiver.plan["/down"] = [500, 500, 500, 500]
    await sold_order(live, product, stream)
    await receiver.wait("/down", 4)

    async def given_up() -> Any:
        items = await deliveries(live, endpoint)
        return items if items and items[0]["status"] == "failed" else None

    [log] = await eventually(given_up, "the delivery given up")
    assert log["attempts"] == 4 and log["last_status"] == 500
    r = await live.http.get(f"/api/v1/webhooks/{endpoint['id']}", headers=live.auth("brand", "acme"))
    assert r.json()["enabled"] is False and "4 failed attempts" in r.json()["disabled_reason"]
    notice = await smtp.next_mail("boss@acme.example")
    assert f"{receiver.url}/down" in notice.text and "/brand/acme/webhooks" in notice.text
    assert endpoint["secret"] not in notice.text

    # Disabled: a new event is not even queued for it.
    await sold_order(live, product, stream, buyer="eve")
    await live.services.aggregator.drain()
    assert len(await deliveries(live, endpoint)) == 1

    r = await live.http.post(f"/api/v1/webhooks/{endpoint['id']}/enable",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["failures"] == 0
    r = await live.http.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{log['id']}/resend",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 202, r.text
    hits = await receiver.wait("/down", 5)
    assert hits[-1].headers["webhook-id"] == hits[0].headers["webhook-id"]
    verified(hits[-1], endpoint["secret"])

    async def resent_delivered() -> Any:
        items = await deliveries(live, endpoint)
        return [d for d in items if d["status"] == "delivered"]

    await eventually(resent_delivered, "the resent delivery delivered")


@pytest.mark.parametrize("extra", [{"webhook_timeout_s": 30.0}])
async def test_events_about_one_order_arrive_in_order(live: Live, receiver: Receiver) -> None:
    """order.refunded is queued while order.paid of the same order is still being tried,
    and is sent only once order.paid went through."""
    product, stream = await shop(live)
    endpoint = await register(live, f"{receiver.url}/seq", ["order.paid", "order.refunded"])
    receiver.plan["/seq"] = ["hold"]  # the first attempt waits for us, then fails
    order = await sold_order(live, product, stream)
    await receiver.wait("/seq", 1)
    r = await live.http.post(f"/api/v1/orders/{order}/refund", headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text

    async def both_queued() -> Any:
        items = await deliveries(live, endpoint)
        return len(items) == 2 and items[0]["type"] == "order.refunded"

    await eventually(both_queued, "order.refunded queued behind order.paid")
    assert len(receiver.on("/seq")) == 1
    receiver.release()
    hits = await receiver.wait("/seq", 3)
    assert [h.type for h in hits] == ["order.paid", "order.paid", "order.refunded"]
    assert [verified(h, endpoint["secret"])["data"]["id"] for h in hits] == [order] * 3
    assert [verified(h, endpoint["secret"])["data"]["state"] for h in hits][1:] == [
        "paid", "refunded"]


async def test_each_brand_gets_its_own_events_and_the_operator_all(
        live: Live, receiver: Receiver) -> None:
    acme_product, acme_stream = await shop(live, "acme")
    bravo_product, bravo_stream = await shop(live, "bravo")
    acme = await register(live, f"{receiver.url}/acme", ["order.paid"], "acme")
    bravo = await register(live, f"{receiver.url}/bravo", ["order.paid"], "bravo")
    ops = await register(live, f"{receiver.url}/ops", ["order.paid"], role="operator")
    acme_order = await sold_order(live, acme_product, acme_stream, "bob")
    bravo_order = await sold_order(live, bravo_product, bravo_stream, "eve")
    await receiver.wait("/ops", 2)
    [a] = await receiver.wait("/acme", 1)
    [b] = await receiver.wait("/bravo", 1)
    await live.services.aggregator.drain()
    assert verified(a, acme["secret"])["data"]["id"] == acme_order
    assert verified(b, bravo["secret"])["data"]["id"] == bravo_order
    assert {verified(h, ops["secret"])["data"]["id"] for h in receiver.on("/ops")} == {
        acme_order, bravo_order}
    assert len(receiver.on("/acme")) == len(receiver.on("/bravo")) == 1

    # Brand A never sees brand B's endpoints or deliveries: 404, as if there were none.
    as_acme = live.auth("brand", "acme")
    r = await live.http.get("/api/v1/brands/acme/webhooks", headers=as_acme)
    assert [e["id"] for e in r.json()["items"]] == [acme["id"]]
    for method, path in [("GET", f"/api/v1/webhooks/{bravo['id']}"),
                         ("GET", f"/api/v1/webhooks/{bravo['id']}/deliveries"),
                         ("PATCH", f"/api/v1/webhooks/{bravo['id']}"),
                         ("DELETE", f"/api/v1/webhooks/{bravo['id']}"),
                         ("POST", f"/api/v1/webhooks/{bravo['id']}/secret"),
                         ("POST", f"/api/v1/webhooks/{ops['id']}/enable")]:
        r = await live.http.request(method, path, headers=as_acme,
                                    json={"description": "x"} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
    r = await live.http.get("/api/v1/brands/bravo/webhooks", headers=as_acme)
    assert r.status_code == 403
    r = await live.http.get("/api/v1/webhooks", headers=live.auth("operator", "ops"))
    assert [e["id"] for e in r.json()["items"]] == [ops["id"]]


@pytest.mark.parametrize("extra", [{"webhook_stock_low": 1}])
async def test_stream_and_stock_events_reach_the_lineups_brands(live: Live,
                                                                receiver: Receiver) -> None:
    await make_brand(live, "acme")
    await make_brand(live, "bravo")
    product = await make_product(live, "acme", stock=2)
    events = ["stream.scheduled", "stream.live", "stream.ended", "stock.low", "product.sold_out"]
    acme = await register(live, f"{receiver.url}/acme", events, "acme")
    await register(live, f"{receiver.url}/bravo", events, "bravo")
    stream = await make_stream(live, [product["id"]])
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/live", headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    await sold_order(live, product, stream, "bob")  # 1 left: at the threshold (1 in this test)
    await sold_order(live, product, stream, "eve")  # none left
    r = await live.http.post(f"/api/v1/streams/{stream['id']}/end", headers=live.auth("creator", "cleo"))
    assert r.status_code == 200, r.text
    hits = await receiver.wait("/acme", 5)
    payloads = [verified(h, acme["secret"]) for h in hits]
    stream_events = [p["type"] for p in payloads if p["type"].startswith("stream.")]
    assert stream_events == ["stream.scheduled", "stream.live", "stream.ended"]
    stock = [(p["type"], p["data"]["available"]) for p in payloads if not p["type"].startswith("stream.")]
    assert stock == [("stock.low", 1), ("product.sold_out", 0)]
    assert all(p["data"]["id"] == stream["id"] for p in payloads if p["type"].startswith("stream."))
    await live.services.aggregator.drain()
    assert receiver.on("/bravo") == []


async def test_secret_rotation_signs_with_both_for_the_grace(live: Live, receiver: Receiver) -> None:
    product, stream = await shop(live)
    endpoint = await register(live, f"{receiver.url}/rot", ["order.paid"])
    r = await live.http.post(f"/api/v1/webhooks/{endpoint['id']}/secret",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != endpoint["secret"]
    await sold_order(live, product, stream)
    [hit] = await receiver.wait("/rot", 1)
    verified(hit, new)
    verified(hit, endpoint["secret"])  # the old one, during the grace period
    assert len(hit.headers["webhook-signature"].split(" ")) == 2


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://10.1.2.3/hook", "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data", "http://[::ffff:127.0.0.1]/hook",
    "http://localhost:8080/hook", "http://192.168.0.1/", "http://0.0.0.0/",
    "http://[fe80::1]/", "http://224.0.0.1/", "http://[64:ff9b::a00:1]/",
    "ftp://example.com/hook", "http://user:pw@example.com/", "not a url"])
@pytest.mark.parametrize("extra", [{"webhook_allow_private": False}])
async def test_private_targets_are_refused(live: Live, rclient: redis.Redis, url: str) -> None:
    await make_brand(live)
    r = await live.http.post("/api/v1/brands/acme/webhooks", headers=live.auth("brand", "acme"),
                             json={"url": url, "events": ["order.paid"]})
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("/webhook-target-refused")
    made = set(await rclient.keys("lc:{wh*"))
    assert made == {f"lc:{{wh:{k}}}:outbox".encode()  # the outboxes, made at start
                    for k in range(live.services.settings.partitions)}, made


@pytest.mark.parametrize("extra", [{"webhook_allow_private": False}])
async def test_a_target_that_turned_private_is_refused_at_delivery(
        live: Live, receiver: Receiver, rclient: redis.Redis) -> None:
    """An endpoint whose URL points at a loopback address by the time it is sent to (here
    registered behind the API's check, as a DNS change would make it) gets nothing sent."""
    product, stream = await shop(live)
    created, _ = await live.services.webhooks.create(
        "brand:acme", f"{receiver.url}/private", [EventType.ORDER_PAID], "")
    endpoint = dict(created)
    await sold_order(live, product, stream)

    async def refused() -> Any:
        items = await deliveries(live, endpoint)
        return items if items and items[0]["attempts"] >= 1 else None

    [log] = await eventually(refused, "an attempt refused")
    assert log["last_error"].startswith("refused:") and "127.0.0.1" in log["last_error"]
    assert receiver.on("/private") == []
