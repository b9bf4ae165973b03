"""The proxy-bidding rules of docs/auctions.md as a small pure model, to replay a load
test's acknowledged bids offline (in the server's order, their event seq) and recompute
the price and the winner from the client's own log. It is written from the document, not
from auction.lua, so the two check each other."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ProxyAuction", "step_of"]


def step_of(increments: list[list[int]], price: int) -> int:
    """The step above `price`: the band of `[[below or -1, step], ...]` the price falls in."""
    for below, step in increments:
        if below < 0 or price < below:
            return step
    return 1


@dataclass(slots=True)
class ProxyAuction:
    start_minor: int
    reserve_minor: int
    increments: list[list[int]]
    price: int = 0
    bids: int = 0
    high: str | None = None
    maxes: dict[str, int] = field(default_factory=dict)

    def minimum(self) -> int:
        """The least acceptable bid: the start price first, then price + step(price)."""
        return self.start_minor if self.bids == 0 else self.price + step_of(self.increments,
                                                                           self.price)

    def bid(self, bidder: str, max_minor: int) -> str:
        """Apply one bid; its outcome (high, outbid, raised) or refusal (too-low, not-higher),
        a refusal changing nothing."""
        high_max = self.maxes.get(self.high, 0) if self.high else 0
        if bidder == self.high:
            if max_minor <= high_max:
                return "not-higher"
            self.maxes[bidder] = high_max = max_minor
            outcome = "raised"
        else:
            if max_minor < self.minimum():
                return "too-low"
            self.maxes[bidder] = max(self.maxes.get(bidder, 0), max_minor)
            if self.high is None:
                self.price, self.high, high_max, outcome = self.minimum(), bidder, max_minor, "high"
            elif max_minor > high_max:
                self.price = min(max_minor, high_max + step_of(self.increments, high_max))
                self.high, high_max, outcome = bidder, max_minor, "high"
            else:  # the standing max holds: a tie goes to the earlier max
                self.price = min(high_max, max_minor + step_of(self.increments, max_minor))
                outcome = "outbid"
        reserve = self.reserve_minor
        if reserve and high_max >= reserve and self.price < reserve:  # a met reserve
            self.price = reserve
        self.bids += 1
        return outcome
