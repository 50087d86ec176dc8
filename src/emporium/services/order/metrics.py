"""order-service's own Prometheus metrics (next to the chassis' RED and event metrics).

`emporium_saga_instances{saga="checkout", state}` is how an operator learns that a saga is
stuck: a parked saga (compensation kept failing) waits for a person, and in-flight sagas
that pile up mean a step is not answering. The recovery loop refreshes it on every pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge

from emporium.services.order.saga import FINAL_STATES, SagaState

SAGA_INSTANCES = Gauge(
    "emporium_saga_instances",
    "Sagas not yet finished, by saga and state (PARKED waits for an operator).",
    ["service", "saga", "state"],
)


def report_unfinished_sagas(service: str, counts: Mapping[SagaState, int]) -> None:
    """Set the gauge for every non-final state, zero where no saga is."""
    for state in SagaState:
        if state not in FINAL_STATES:
            SAGA_INSTANCES.labels(service, "checkout", state.value).set(counts.get(state, 0))
