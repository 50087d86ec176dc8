"""api-gateway: the public REST API (API.md). Authenticates, rate-limits and routes each
request to a backend over gRPC; holds no state of its own."""
