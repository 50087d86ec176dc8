"""The twelve services; none imports another (import-linter)."""
