"""Observability as code: the seed's SLO table (`slo`), the Prometheus rules generated from it
(`rules`), the Alertmanager routing (`alertmanager`) and the generator writing them under
deploy/observability/ (`generate`). Never imported by a service: it only reads the chassis'
metric names and the service catalog."""
