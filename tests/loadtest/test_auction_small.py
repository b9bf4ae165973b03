"""The auction load test, tiny: `livecart loadtest auction` as a command against a real
`livecart serve` child (the API's shortest auction, 10 s), once plain and once with
Valkey killed mid-auction; every invariant must report zero. And the proxy model the test
replays the bids through, on the cases docs/auctions.md spells out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from conftest import UNIT

from loadtest.auction_model import ProxyAuction

BANDS = [[10_000, 10], [100_000, 50], [-1, 100]]


@pytest.mark.parametrize("kill", [False, True], ids=["plain", "kill-valkey"])
async def test_tiny_auction_load_holds_every_invariant(tmp_path: Path, kill: bool) -> None:
    out = tmp_path / "auction.json"
    argv = [sys.executable, "-m", "live.node.cli", "loadtest", "auction", "--bidders", "50",
            "--bid-rate", "100", "--duration", "10", "--no-baseline", "--json", str(out)]
    # with the kill, no snipe lands before the deadline (--lead-ms 0): no 5 s extension round;
    # without, a few viewers watch: each must be shown the final bid (the hub's tick)
    run = await asyncio.to_thread(subprocess.run, argv + (["--kill-valkey", "--lead-ms", "0"]
                                                          if kill else ["--viewers", "20"]),
                                  capture_output=True, text=True, timeout=120 * UNIT)
    assert run.returncode == 0, run.stdout + run.stderr
    report = orjson.loads(out.read_bytes())
    c = report["checks"]
    assert report["unresolved"] == 0
    assert c["lost_acknowledged"] == c["accepted_not_acknowledged"] == 0, c
    assert c["accepted_after_deadline"] == c["sent_after_deadline_and_accepted"] == 0, c
    assert c["model_disagreements"] == 0 and c["price_matches"] and c["winner_matches"], c
    assert c["acknowledged"] == c["auction_bids"] > 0
    assert report["outcomes"].get("too-low", 0) > 0  # refusals, not only acceptances
    assert report["final"]["state"] == "closed"
    assert len(report["kills"]) == (1 if kill else 0)
    if not kill:
        assert report["viewers_seen"]["viewers_behind_auction"] == 0
        assert report["bid_to_screen"]["missed_pairs"] == 0
        assert report["bid_to_screen"]["pairs"] == 20 * report["bid_to_screen"]["bids_sampled"] > 0
    if kill:
        assert report["kills"][0]["new_pid"] != report["kills"][0]["old_pid"]


def test_the_model_follows_the_documented_proxy_rules() -> None:
    a = ProxyAuction(1000, 0, BANDS)
    assert a.bid("ann", 999) == "too-low"
    assert (a.bid("ann", 3000), a.price) == ("high", 1000)  # the first bid: the start price
    assert (a.bid("bob", 1500), a.price) == ("outbid", 1510)  # bob's max + its step
    assert (a.bid("cal", 3000), a.price, a.high) == ("outbid", 3000, "ann")  # a tie: earlier
    assert a.bid("ann", 2000) == "not-higher"
    assert (a.bid("ann", 20_000), a.price) == ("raised", 3000)
    assert (a.bid("bob", 30_000), a.price, a.high) == ("high", 20_050, "bob")  # next band
    assert a.bid("cal", 20_050) == "too-low"  # price + step is the least
    reserved = ProxyAuction(1000, 5000, BANDS)
    assert (reserved.bid("ann", 6000), reserved.price) == ("high", 5000)  # the reserve met
