"""Event plumbing on top of the bus port: CloudEvents envelope, transactional outbox and its
relay, idempotent consumers with an inbox and a dead-letter topic. See docs/events.md."""
