"""The Prometheus configuration for the `make up` platform on this machine: one scrape target
per process (each serves `/metrics` on its HTTP port, chassis.catalog), labelled with the
`service` name the metrics carry, the generated rule files, and the local Alertmanager.

The cluster scrapes through Kubernetes service discovery instead (Debian's promtool cannot
check `kubernetes_sd_configs`, see ../shared/notes/ops-tooling.md), with the same labels.
"""

from __future__ import annotations

from typing import Any

from emporium.chassis.catalog import SERVICES

ALERTMANAGER = "127.0.0.1:9093"


def config(host: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "30s"},
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [ALERTMANAGER]}]}]},
        "scrape_configs": [
            {
                "job_name": "emporium",
                "static_configs": [
                    {"targets": [f"{host}:{info.http_port}"], "labels": {"service": info.name}}
                    for info in SERVICES
                ],
            }
        ],
    }
