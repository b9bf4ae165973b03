"""A creator's statement (CSV, server-made) and earnings breakdown: exact minor-unit sums
that match the ledger and the earnings report, refunds included."""

from __future__ import annotations

import csv
import io
import time

import pytest
from conftest import Live
from shop import buy, give_wallet, make_brand, make_live_stream, make_product
from test_bad_input import assert_problem

from live.web.studio_api import _month_range

STATEMENT = "/api/v1/creators/cleo/statement"


def this_month() -> str:
    return time.strftime("%Y-%m", time.gmtime())


async def sell(live: Live) -> tuple[str, str]:
    """Two show sales (one refunded) and a link sale at 10%, folded; (stream, product)."""
    await make_brand(live)
    product = (await make_product(live, price_minor=3333, commission_bps=1000))["id"]
    stream = (await make_live_stream(live, [product]))["id"]
    await give_wallet(live, "bob")
    orders = []
    for _ in range(2):
        r = await buy(live, "bob", product, stream=stream)
        assert r.status_code == 201, r.text
        orders.append(r.json()["order"]["id"])
    link = (await live.http.post("/api/v1/links", headers=live.auth("creator", "cleo"),
                                 json={"product_id": product})).json()
    token = live.services.signer.sign(link["creator_id"], product, link["code"])
    r = await buy(live, "bob", product, quantity=3, attribution=token)
    assert r.status_code == 201 and r.json()["order"]["channel"] == "link", r.text
    r = await live.http.post(f"/api/v1/orders/{orders[1]}/refund",
                             headers=live.auth("brand", "acme"))
    assert r.status_code == 200, r.text
    await live.services.aggregator.drain()
    return stream, product


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_a_months_statement_adds_up_to_the_ledger(live: Live) -> None:
    stream, product = await sell(live)
    cleo = live.auth("creator", "cleo")
    earned = (await live.http.get("/api/v1/creators/cleo/earnings", headers=cleo)).json()
    r = await live.http.get(STATEMENT, params={"month": this_month()}, headers=cleo)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        f'attachment; filename="statement-cleo-{this_month()}.csv"')
    rows = rows_of(r.text)
    entries, totals = rows[:-1], rows[-1:]
    # 3 credits (333 + 333 + 999) and the refund's reversal (-333), every one in the ledger.
    assert sorted((e["kind"], int(e["commission_minor"])) for e in entries) == [
        ("credit", 333), ("credit", 333), ("credit", 999), ("reversal", -333)]
    assert {e["stream_id"] for e in entries} == {stream, ""}
    assert {(e["brand_id"], e["product_id"], e["currency"]) for e in entries} == {
        ("acme", product, "USD")}
    assert sum(int(e["commission_minor"]) for e in entries) == earned["earned_minor"]["USD"] == 1332
    assert totals == [{"booked_at": "total", "order_id": "", "kind": "", "brand_id": "",
                       "product_id": "", "stream_id": "", "currency": "USD",
                       "sale_minor": str(3333 * 4), "commission_minor": "1332",
                       "sale": "133.32", "commission": "13.32"}]
    reversal = next(e for e in entries if e["kind"] == "reversal")
    assert (reversal["sale"], reversal["commission"]) == ("-33.33", "-3.33")
    # The breakdown says the same, split by show (the link sale under "-").
    parts = (await live.http.get("/api/v1/creators/cleo/earnings/breakdown", headers=cleo)).json()
    assert parts["shows"] == [
        {"stream_id": "-", "currency": "USD", "commission_minor": 999, "sales_minor": 9999,
         "orders": 1},
        {"stream_id": stream, "currency": "USD", "commission_minor": 333, "sales_minor": 3333,
         "orders": 1}]
    assert [b["commission_minor"] for b in parts["brands"]] == [1332]
    # Another month holds none of it: the header alone.
    r = await live.http.get(STATEMENT, params={"month": "2001-01"}, headers=cleo)
    assert r.status_code == 200 and r.text.splitlines() == [
        "booked_at,order_id,kind,brand_id,product_id,stream_id,currency,sale_minor,"
        "commission_minor,sale,commission"]


async def test_statements_are_the_creators_own(live: Live) -> None:
    await sell(live)
    for headers in (live.auth("creator", "dana"), live.auth("brand", "acme"),
                    live.auth("buyer", "bob"), {}):
        for path in (STATEMENT, "/api/v1/creators/cleo/earnings/breakdown"):
            r = await live.http.get(path, params={"month": this_month()}, headers=headers)
            assert r.status_code in (401, 403), (headers, path, r.status_code)
            assert "333" not in r.text
    r = await live.http.get(STATEMENT, params={"month": this_month()},
                            headers=live.auth("operator", "ops"))
    assert r.status_code == 200 and len(rows_of(r.text)) == 5


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-01", "2026-00", "", "2026-01-01"])
async def test_a_bad_month_is_a_bad_query(live: Live, month: str) -> None:
    r = await live.http.get(STATEMENT, params={"month": month},
                            headers=live.auth("creator", "cleo"))
    assert_problem(r, 400, "bad-query")
    assert "month" in r.json()["detail"]


@pytest.mark.parametrize("node_settings", [{"statement_max_rows": 3}])
async def test_a_statement_past_its_cap_is_refused(live: Live) -> None:
    await sell(live)
    r = await live.http.get(STATEMENT, params={"month": this_month()},
                            headers=live.auth("creator", "cleo"))
    assert_problem(r, 422, "statement-too-large")


def test_months_are_utc_and_december_ends_in_january() -> None:
    assert _month_range("2026-12") == (1796083200000, 1798761600000)
    assert _month_range("2024-02")[1] - _month_range("2024-02")[0] == 29 * 86_400_000
