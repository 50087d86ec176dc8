"""The Alertmanager configuration: pages to PagerDuty, everything else to the owning team's
Slack channel, generated from the service catalog's owners (`slo.OWNERS`).

No secret is in it: the PagerDuty routing key and the Slack webhook URL are read from files
(`routing_key_file`, `api_url_file`) that the deployment mounts (a Kubernetes Secret in the
cluster, files under the run directory for `make observe`); `config(secrets=...)` says where.

`Timing` holds the waits (group_wait, group_interval, repeat_interval, resolve_timeout): the
defaults are production's; the end-to-end delivery test renders the same configuration with
waits of a second (tests/observability/test_alert_delivery.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emporium.observability.slo import OWNERS, TEAMS

SECRETS_DIR = "/etc/alertmanager/secrets"
PAGERDUTY_KEY_FILE = f"{SECRETS_DIR}/pagerduty-routing-key"
SLACK_URL_FILE = f"{SECRETS_DIR}/slack-webhook-url"
DEFAULT_TEAM = "platform"


@dataclass(frozen=True)
class Timing:
    """How long Alertmanager waits: before the first notification of a group (pages sooner),
    between two notifications of a changed group, before repeating an unchanged one, and
    before it calls an alert that is no longer sent resolved."""

    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    page_group_wait: str = "10s"
    page_repeat_interval: str = "1h"
    resolve_timeout: str = "5m"


PRODUCTION = Timing()


def slack_channel(team: str) -> str:
    return f"#emporium-{team}-alerts"


def _slack(team: str, url_file: str) -> dict[str, Any]:
    return {
        "name": f"slack-{team}",
        "slack_configs": [
            {
                "api_url_file": url_file,
                "channel": slack_channel(team),
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} "
                "{{ .CommonLabels.service }}",
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n"
                "{{ .Annotations.runbook_url }}\n{{ end }}",
            }
        ],
    }


def config(
    timing: Timing = PRODUCTION, secrets: str = SECRETS_DIR, pagerduty_url: str | None = None
) -> dict[str, Any]:
    """The configuration; `secrets` is the directory of the two secret files, `pagerduty_url`
    another Events API v2 endpoint than PagerDuty's own (a test's receiver)."""
    key_file = PAGERDUTY_KEY_FILE.replace(SECRETS_DIR, secrets, 1)
    url_file = SLACK_URL_FILE.replace(SECRETS_DIR, secrets, 1)
    pagerduty: dict[str, Any] = {
        "routing_key_file": key_file,
        "send_resolved": True,
        "severity": "critical",
        "description": "{{ .CommonLabels.alertname }} {{ .CommonLabels.service }}"
        ": {{ .CommonAnnotations.summary }}",
        "details": {"runbook_url": "{{ .CommonAnnotations.runbook_url }}"},
    }
    if pagerduty_url is not None:
        pagerduty["url"] = pagerduty_url
    team_routes = []
    for team in TEAMS:
        services = sorted(s for s, owner in OWNERS.items() if owner == team)
        if services and team != DEFAULT_TEAM:  # the platform team is the default receiver
            team_routes.append(
                {"receiver": f"slack-{team}", "matchers": [f'service=~"{"|".join(services)}"']}
            )
    return {
        "global": {"resolve_timeout": timing.resolve_timeout},
        "route": {
            "receiver": f"slack-{DEFAULT_TEAM}",
            "group_by": ["alertname", "service"],
            "group_wait": timing.group_wait,
            "group_interval": timing.group_interval,
            "repeat_interval": timing.repeat_interval,
            "routes": [
                {
                    "receiver": "pagerduty",
                    "matchers": ['severity="page"'],
                    "group_wait": timing.page_group_wait,
                    "repeat_interval": timing.page_repeat_interval,
                },
                *team_routes,
            ],
        },
        "inhibit_rules": [
            {  # a service that is down: its SLO alerts say nothing more
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": ['alertname=~"SLO.+"'],
                "equal": ["service"],
            },
            {  # a page already covers the ticket of the same SLI
                "source_matchers": ['severity="page"'],
                "target_matchers": ['severity="ticket"'],
                "equal": ["service", "sli"],
            },
        ],
        "receivers": [
            {"name": "pagerduty", "pagerduty_configs": [pagerduty]},
            *(_slack(team, url_file) for team in TEAMS),
        ],
    }
