"""Settings: embedded defaults, per-service and platform-wide overrides, clear errors."""

from __future__ import annotations

import pytest

from emporium.chassis.config import ConfigError, grpc_target, load_settings, url_path


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


def test_event_retention_defaults_to_a_week_platform_wide_then_per_service():
    assert load_settings("order", {}).event_retention_hours == 168
    env = {"EMPORIUM_EVENT_RETENTION_HOURS": "240", "EMPORIUM_ORDER_EVENT_RETENTION_HOURS": "720"}
    assert load_settings("order", env).event_retention_hours == 720
    assert load_settings("user", env).event_retention_hours == 240
    with pytest.raises(ConfigError, match="EVENT_RETENTION_HOURS"):
        load_settings("user", {"EMPORIUM_USER_EVENT_RETENTION_HOURS": "0"})
