"""The built-in payment provider (see `ledger` for its rules, `app` for its HTTP API)."""
