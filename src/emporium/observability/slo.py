"""The seed's SLO table and service owners, as data the rule generator reads.

The table is the seed's (availability / p99 latency / error rate per service). Each row gives
three SLIs, each a ratio of "bad" over "all", so one burn-rate machinery covers them:

- `availability`: the share of scrapes in which the service's targets were down (`up == 0`);
  budget = 1 - availability objective.
- `errors`: the share of requests that failed on the server's side (gRPC UNKNOWN, INTERNAL,
  UNAVAILABLE, DEADLINE_EXCEEDED, DATA_LOSS; HTTP 5xx at the gateway); budget = the table's
  error-rate bound.
- `latency`: the share of requests slower than the p99 bound (a histogram bucket edge, see
  chassis.metrics.LATENCY_BUCKETS); budget = 1 % (it is a p99).

Owners are the seed's service catalog (ARCHITECTURE.md): Alertmanager sends each team's
tickets to its own Slack channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from emporium.chassis.metrics import LATENCY_BUCKETS

# The SRE workbook's windows: pairs of (long, short) for the burn-rate alerts, plus the SLO
# period (30 days) for the error budget left.
WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BUDGET_PERIOD: Final = "30d"

# gRPC codes that are the server's fault (chassis.rpc.server._SERVER_FAULTS); a client's
# INVALID_ARGUMENT or NOT_FOUND spends no budget.
GRPC_SERVER_FAULTS: Final = ("UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS")
# The process's own endpoints are not user traffic.
UNTRACKED_GRPC_METHODS: Final = "grpc.health.v1.Health/.*|grpc.reflection.*"
UNTRACKED_HTTP_ROUTES: Final = "/metrics|/healthz"


@dataclass(frozen=True)
class BurnRateAlert:
    """Fire when the budget burns `factor` times too fast over both windows (SRE workbook,
    multiwindow multi-burn-rate: the long window proves it is real, the short one that it is
    still going on, so the alert resets soon after the fault ends)."""

    factor: float
    long: str
    short: str


# page: 2 % of a 30-day budget in 1 h, or 5 % in 6 h; ticket: 10 % in 1 day, or 10 % in 3 days.
PAGE_BURN: Final = (BurnRateAlert(14.4, "1h", "5m"), BurnRateAlert(6.0, "6h", "30m"))
TICKET_BURN: Final = (BurnRateAlert(3.0, "1d", "2h"), BurnRateAlert(1.0, "3d", "6h"))
# Ticket when less than this share of the 30-day budget is left.
BUDGET_LEFT_WARNING: Final = 0.10


@dataclass(frozen=True)
class SLO:
    """One row of the seed's table. `service` is the metrics' `service` label (the
    catalog's name: `api_gateway`, `order`), `protocol` which RED metrics carry its SLIs."""

    service: str
    availability: float
    p99_seconds: float
    max_error_ratio: float
    protocol: str  # "http" (the gateway's REST) or "grpc" (a backend's server)

    def __post_init__(self) -> None:
        if self.p99_seconds not in LATENCY_BUCKETS:
            raise ValueError(f"{self.service}: p99 {self.p99_seconds}s is not a bucket edge")

    def budget(self, sli: str) -> float:
        """The share of bad events the SLI may have over the period."""
        return {
            "availability": 1.0 - self.availability,
            "errors": self.max_error_ratio,
            "latency": 0.01,
        }[sli]


SLIS: Final = ("availability", "errors", "latency")

SLOS: Final = (
    SLO("api_gateway", 0.9995, 0.2, 0.001, "http"),
    SLO("order", 0.999, 0.5, 0.005, "grpc"),
    SLO("payment", 0.999, 1.0, 0.001, "grpc"),
    SLO("search", 0.995, 0.3, 0.01, "grpc"),
)

# The seed's service catalog: owner team of each service (by metrics `service` label).
OWNERS: Final = {
    "api_gateway": "platform",
    "user": "identity",
    "order": "commerce",
    "product": "catalog",
    "payment": "payment",
    "inventory": "supply",
    "notification": "platform",
    "search": "search",
    "recommendation": "ml",
    "analytics": "data",
    "auth": "identity",
    "cdn": "platform",
}
TEAMS: Final = (
    "platform",
    "identity",
    "commerce",
    "catalog",
    "payment",
    "supply",
    "search",
    "ml",
    "data",
)
