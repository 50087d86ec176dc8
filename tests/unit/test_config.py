"""Settings: embedded defaults, per-service and platform-wide overrides, clear errors."""

from __future__ import annotations

import pytest

from emporium.chassis.catalog import SERVICES, service
from emporium.chassis.config import (
    ConfigError,
    ServiceSettings,
    grpc_target,
    load_settings,
    url_path,
)


def test_embedded_defaults_live_under_the_data_dir(tmp_path):
    s = load_settings("order", {"EMPORIUM_DATA_DIR": str(tmp_path)})
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path}/order.sqlite3"
    assert url_path(s.bus_url) == tmp_path / "bus.sqlite3"
    assert s.kv_url == f"memory://{tmp_path}/order-kv.aof"
    assert url_path(s.kv_url) == tmp_path / "order-kv.aof"
    assert (s.grpc_port, s.http_port) == (50052, 9052)


def test_service_variable_beats_platform_variable():
    env = {
        "EMPORIUM_BUS_URL": "kafka://broker:9092",
        "EMPORIUM_DATABASE_URL": "postgresql://db/shared",
        "EMPORIUM_ORDER_DATABASE_URL": "postgresql://db/orders",
    }
    order = load_settings("order", env)
    user = load_settings("user", env)
    assert order.bus_url == user.bus_url == "kafka://broker:9092"
    assert order.database_url == "postgresql+asyncpg://db/orders"
    assert user.database_url == "postgresql+asyncpg://db/shared"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EMPORIUM_ORDER_DATABASE_URL": "mysql://x/y"}, "EMPORIUM_ORDER_DATABASE_URL"),
        ({"EMPORIUM_BUS_URL": "rabbit://x"}, "EMPORIUM_BUS_URL"),
        ({"EMPORIUM_ORDER_KV_URL": "no-scheme"}, "EMPORIUM_ORDER_KV_URL"),
        ({"EMPORIUM_ORDER_GRPC_PORT": "seventy"}, "EMPORIUM_ORDER_GRPC_PORT"),
        ({"EMPORIUM_ORDER_GRPC_PORT": "70000"}, "EMPORIUM_ORDER_GRPC_PORT"),
    ],
)
def test_bad_configuration_names_the_variable_in_one_line(env, variable):
    with pytest.raises(ConfigError) as info:
        load_settings("order", env)
    message = str(info.value)
    assert message.startswith(variable)
    assert "\n" not in message


def test_gateway_port_follows_the_api_contract_variable():
    assert load_settings("api-gateway", {"EMPORIUM_GATEWAY_PORT": "18080"}).http_port == 18080
    assert load_settings("api_gateway", {}).http_port == 8080


def test_grpc_target_defaults_to_loopback_and_can_be_overridden():
    assert grpc_target("payment", {}) == "127.0.0.1:50054"
    assert grpc_target("payment", {"EMPORIUM_PAYMENT_GRPC_TARGET": "payment:50054"}) == (
        "payment:50054"
    )


def test_unknown_service_is_refused():
    with pytest.raises(KeyError):
        load_settings("warehouse", {})


# Names that other software on a host commonly sets for itself; pydantic-settings'
# BaseSettings would read each of them into the field of the same name.
BARE_VARIABLES = {
    "DATABASE_URL": "postgresql://attacker.example/shared",
    "KV_URL": "redis://attacker.example:6379/0",
    "BUS_URL": "kafka://attacker.example:9092",
    "DOCUMENTS_URL": "mongodb://attacker.example/",
    "SEARCH_URL": "http://attacker.example:9200",
    "OLAP_URL": "clickhouse://attacker.example/db",
    "BLOB_URL": "s3://attacker-bucket",
    "HOST": "0.0.0.0",
    "NAME": "payment",
    "LOG_LEVEL": "DEBUG",
    "DATA_DIR": "/tmp/elsewhere",
    "GRPC_PORT": "1234",
    "HTTP_PORT": "1235",
    "RPC_TIMEOUT_SECONDS": "99",
    "SHUTDOWN_GRACE_SECONDS": "0",
}


@pytest.mark.parametrize("name", [s.name for s in SERVICES])
def test_only_emporium_variables_change_a_service(name, tmp_path, monkeypatch):
    """A bare `DATABASE_URL`, `HOST`, `NAME`... in the environment changes nothing: every
    service keeps the settings it has with a clean environment (only `EMPORIUM_*` counts)."""
    for variable in BARE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("EMPORIUM_DATA_DIR", str(tmp_path))
    clean = load_settings(name)
    for variable, value in {
        **BARE_VARIABLES,
        **{k.lower(): v for k, v in BARE_VARIABLES.items()},
    }.items():
        monkeypatch.setenv(variable, value)
    polluted = load_settings(name)
    assert polluted.model_dump() == clean.model_dump()
    assert polluted.host == "127.0.0.1"
    assert polluted.name == service(name).name
    bare = ServiceSettings()  # built directly, it reads nothing from the environment either
    assert (bare.database_url, bare.host, bare.name, bare.log_level) == (
        "",
        "127.0.0.1",
        "",
        "INFO",
    )


def test_outbox_relay_is_builtin_unless_switched_off_platform_wide_or_per_service():
    assert load_settings("order", {}).outbox_relay == "builtin"
    env = {"EMPORIUM_OUTBOX_RELAY": "off"}
    assert load_settings("order", env).outbox_relay == "off"
    assert load_settings("user", env).outbox_relay == "off"
    env["EMPORIUM_USER_OUTBOX_RELAY"] = "builtin"
    assert load_settings("user", env).outbox_relay == "builtin"
    assert load_settings("order", {"EMPORIUM_ORDER_OUTBOX_RELAY": "off"}).outbox_relay == "off"
    assert load_settings("user", {"EMPORIUM_ORDER_OUTBOX_RELAY": "off"}).outbox_relay == "builtin"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EMPORIUM_OUTBOX_RELAY": "debezium"}, "EMPORIUM_OUTBOX_RELAY"),
        ({"EMPORIUM_ORDER_OUTBOX_RELAY": "no"}, "EMPORIUM_ORDER_OUTBOX_RELAY"),
    ],
)
def test_a_bad_outbox_relay_value_names_the_variable_that_holds_it(env, variable):
    with pytest.raises(ConfigError) as info:
        load_settings("order", env)
    assert str(info.value).startswith(f"{variable}:")
    assert "builtin" in str(info.value)


def test_event_retention_defaults_to_a_week_platform_wide_then_per_service():
    assert load_settings("order", {}).event_retention_hours == 168
    env = {"EMPORIUM_EVENT_RETENTION_HOURS": "240", "EMPORIUM_ORDER_EVENT_RETENTION_HOURS": "720"}
    assert load_settings("order", env).event_retention_hours == 720
    assert load_settings("user", env).event_retention_hours == 240
    with pytest.raises(ConfigError, match="EVENT_RETENTION_HOURS"):
        load_settings("user", {"EMPORIUM_USER_EVENT_RETENTION_HOURS": "0"})
