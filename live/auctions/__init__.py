"""Live auctions (docs/auctions.md): the bid rules in one script (auction.lua), the store
that calls it, the terms an auction is created with, and the desk (desk.py): the lot, the
winner's charge, the second chance and the closer every node runs."""
