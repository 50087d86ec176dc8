"""Real servers for tests: their URLs come from the environment (`.ci/backends.sh` prints them).

On a laptop a missing server skips its tests with a reason. With
`EMPORIUM_REQUIRE_REAL_BACKENDS=1` (set by `.ci/run`) a missing server is a failure instead,
so CI can never go green by skipping the real-backend tests.
"""

from __future__ import annotations

import os

import pytest

# backend name -> environment variable holding its URL
REAL_BACKENDS: dict[str, str] = {
    "postgresql": "EMPORIUM_TEST_POSTGRES_URL",
    "redis": "EMPORIUM_TEST_REDIS_URL",
    "kafka": "EMPORIUM_TEST_KAFKA_URL",
    "mongodb": "EMPORIUM_TEST_MONGODB_URL",
    "s3": "EMPORIUM_TEST_S3_URL",
    "elasticsearch": "EMPORIUM_TEST_ELASTICSEARCH_URL",
    "opensearch": "EMPORIUM_TEST_OPENSEARCH_URL",
    "clickhouse": "EMPORIUM_TEST_CLICKHOUSE_URL",
    # not a server but the command that runs Debezium on the outboxes (tests/cdc_support.py)
    "debezium": "EMPORIUM_TEST_DEBEZIUM_LAUNCHER",
}

# Servers that cannot be installed from this machine's registries: their tests still skip
# under the CI flag, and the README's support table says so. Keep this list honest.
NOT_INSTALLABLE: set[str] = {"elasticsearch", "clickhouse"}


def require_real_backends() -> bool:
    return os.environ.get("EMPORIUM_REQUIRE_REAL_BACKENDS", "") not in ("", "0", "false")


def backend_url(name: str) -> str:
    """The URL of real backend `name`, or skip (fail under the CI flag) when none is set."""
    var = REAL_BACKENDS[name]
    url = os.environ.get(var, "")
    if url:
        return url
    if name in NOT_INSTALLABLE:
        reason = (
            f"no real {name} server: none is installable from this machine's registries "
            f"(README, support table); point {var} at one to run these tests"
        )
    else:
        script = {
            "mongodb": ".ci/mongodb.sh",
            "debezium": ".ci/debezium.sh",
            "opensearch": ".ci/opensearch.sh",
        }.get(name, ".ci/backends.sh")
        reason = f'no real {name} server: set {var} (`eval "$({script} start)"`)'
    if require_real_backends() and name not in NOT_INSTALLABLE:
        pytest.fail(f"EMPORIUM_REQUIRE_REAL_BACKENDS=1 but {reason}")
    pytest.skip(reason)
