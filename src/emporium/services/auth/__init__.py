"""auth-service: credentials (relational), sessions and refresh tokens (kv).

It issues short-lived signed access tokens (verifiable with its JWKS) and rotating refresh
tokens with reuse detection; sessions live in the kv store so logout takes effect at once.
Neither produces nor consumes events.
"""
