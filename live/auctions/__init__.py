"""Live auctions (docs/auctions.md): the bid rules in one script (auction.lua), the store
that calls it, and the terms an auction is created with."""
