"""order-service's configurable compensation patience (`EMPORIUM_ORDER_COMPENSATION_*`)."""

from __future__ import annotations

import pytest

from emporium.chassis.config import ConfigError
from emporium.services.order.app import ATTEMPTS_VAR, MAX_DELAY_VAR, retry_settings


def test_defaults_ride_out_a_few_minutes_of_outage() -> None:
    policy, backoff = retry_settings({})
    assert (policy.compensation_attempts, backoff.maximum) == (20, 15.0)


def test_the_operator_can_shorten_or_lengthen_it() -> None:
    policy, backoff = retry_settings({ATTEMPTS_VAR: "12", MAX_DELAY_VAR: "3"})
    assert (policy.compensation_attempts, backoff.maximum) == (12, 3.0)


@pytest.mark.parametrize(
    "env",
    [{ATTEMPTS_VAR: "many"}, {ATTEMPTS_VAR: "0"}, {MAX_DELAY_VAR: "-1"}, {MAX_DELAY_VAR: "x"}],
)
def test_bad_values_stop_the_service_with_the_variable_named(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="EMPORIUM_ORDER_COMPENSATION"):
        retry_settings(env)
