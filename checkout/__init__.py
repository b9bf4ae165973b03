"""livecart's checkout: catalogs, stock, the atomic buy path, payments, affiliates, ledger."""
