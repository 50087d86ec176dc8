"""order-service's own Prometheus metrics (next to the chassis' RED and event metrics).

`emporium_saga_instances{saga="checkout", state}` is how an operator learns that a saga is
stuck: a parked saga (compensation kept failing) waits for a person, and in-flight sagas
that pile up mean a step is not answering. The recovery loop refreshes it on every pass.
`emporium_sagas_parked_total` counts every parking (an alert rule fires on either).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from emporium.services.order.saga import FINAL_STATES, SagaState

SAGA_INSTANCES = Gauge(
    "emporium_saga_instances",
    "Sagas not yet finished, by saga and state (PARKED waits for an operator).",
    ["service", "saga", "state"],
)


SAGAS_PARKED = Counter(
    "emporium_sagas_parked_total",
    "Checkout sagas parked because a compensation kept failing (each waits for an operator).",
    ["service", "saga"],
)


def count_parked() -> None:
    """One saga was parked (called once its state is committed)."""
    SAGAS_PARKED.labels("order", "checkout").inc()


def report_unfinished_sagas(service: str, counts: Mapping[SagaState, int]) -> None:
    """Set the gauge for every non-final state, zero where no saga is."""
    for state in SagaState:
        if state not in FINAL_STATES:
            SAGA_INSTANCES.labels(service, "checkout", state.value).set(counts.get(state, 0))
