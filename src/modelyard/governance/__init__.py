"""Who is calling, may they, budgets, rate limits, prices, the ledger."""
