"""Shared fixtures. Port suites parametrize over adapters; see tests/backends.py for how
real servers are found (and why a skip is a failure in CI)."""
