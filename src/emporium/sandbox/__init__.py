"""Stand-ins for the outside world that the platform talks to, run as their own processes.

`payments` is the built-in payment provider of API.md ("Sandbox payment tokens"): an HTTP
service with a provider's real semantics (idempotency keys, lookups, late captures, voids and
refunds, failures on demand, a durable ledger). No service imports this package: payment-service
reaches it over HTTP exactly as it would reach a real provider.
"""
