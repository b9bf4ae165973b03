"""The overlay reducer, Python and JS, against the same fixtures (overlay/fixtures)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from conftest import Live
from live.hub.protocol import EVENT_TYPES
from overlay.state import Resync, Thresholds, auction_view, reduce, view

FIXTURES = json.loads(resources.files("overlay").joinpath("fixtures/conformance.json")
                      .read_text("utf-8"))
CASES = FIXTURES["cases"]


def _run_python(case: dict[str, Any]) -> dict[str, Any]:
    state = None
    try:
        for step in case["steps"]:
            state = reduce(state, step)
    except Resync:
        return {"resync": True}
    assert state is not None
    out: dict[str, Any] = {"seq": state["seq"],
                            "view": view(state, case["now_ms"], Thresholds(**FIXTURES["thresholds"]))}
    if "codes" in case["expect"]:  # the product codes the cards show (comment-to-buy)
        out["codes"] = state["stream"].get("codes")
    if "auction" in case["expect"]:  # the auction card, seen by the page of `paddle`
        out["auction"] = auction_view(state, case["now_ms"], case.get("paddle"))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_reducer(case: dict[str, Any]) -> None:
    assert _run_python(case) == case["expect"]


def test_fixtures_cover_every_message_kind() -> None:
    kinds = {step["type"] for case in CASES for step in case["steps"]}
    assert kinds >= {"snapshot", "state", *EVENT_TYPES}  # a new event type needs a case
    assert any(c["expect"].get("resync") for c in CASES)
    assert any(s.get("just_bought") for c in CASES for s in c["steps"] if s["type"] == "state")
    assert any("codes" in c["expect"] for c in CASES)
    carded = {s["type"] for c in CASES if "auction" in c["expect"] for s in c["steps"]}
    assert carded >= {t for t in EVENT_TYPES if t.startswith("auction.")}  # and its card
    assert any(s.get("auction") for c in CASES for s in c["steps"] if s["type"] == "snapshot")
    assert any(s.get("auction") for c in CASES for s in c["steps"] if s["type"] == "state")


_JS_RUNNER = """async ({cases, thresholds}) => {
  const m = await import('/static/overlay.js');
  return cases.map((c) => {
    let state = null;
    try {
      for (const step of c.steps) state = m.reduce(state, step);
    } catch (e) {
      if (e instanceof m.Resync) return {resync: true};
      throw e;
    }
    const out = {seq: state.seq, view: m.view(state, c.now_ms, thresholds)};
    if ("codes" in c.expect) out.codes = state.stream.codes ?? null;
    if ("auction" in c.expect) out.auction = m.auctionView(state, c.now_ms, c.paddle ?? null);
    return out;
  });
}"""


async def test_js_reducer_in_chromium(live: Live, new_page: Any) -> None:
    page = await new_page()
    await page.goto(live.url + "/")
    results = await page.evaluate(_JS_RUNNER, {"cases": CASES, "thresholds": FIXTURES["thresholds"]})
    for case, result in zip(CASES, results, strict=True):
        assert result == case["expect"], case["name"]
