"""The Alertmanager configuration: pages to PagerDuty, everything else to the owning team's
Slack channel, generated from the service catalog's owners (`slo.OWNERS`).

No secret is in it: the PagerDuty routing key and the Slack webhook URL are read from files
(`routing_key_file`, `api_url_file`) that the deployment mounts (a Kubernetes Secret in the
cluster, files under the run directory for `make observe`).
"""

from __future__ import annotations

from typing import Any

from emporium.observability.slo import OWNERS, TEAMS

SECRETS_DIR = "/etc/alertmanager/secrets"
PAGERDUTY_KEY_FILE = f"{SECRETS_DIR}/pagerduty-routing-key"
SLACK_URL_FILE = f"{SECRETS_DIR}/slack-webhook-url"
DEFAULT_TEAM = "platform"


def slack_channel(team: str) -> str:
    return f"#emporium-{team}-alerts"


def _slack(team: str) -> dict[str, Any]:
    return {
        "name": f"slack-{team}",
        "slack_configs": [
            {
                "api_url_file": SLACK_URL_FILE,
                "channel": slack_channel(team),
                "send_resolved": True,
                "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} "
                "{{ .CommonLabels.service }}",
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n"
                "{{ .Annotations.runbook_url }}\n{{ end }}",
            }
        ],
    }


def config() -> dict[str, Any]:
    team_routes = []
    for team in TEAMS:
        services = sorted(s for s, owner in OWNERS.items() if owner == team)
        if services and team != DEFAULT_TEAM:  # the platform team is the default receiver
            team_routes.append(
                {"receiver": f"slack-{team}", "matchers": [f'service=~"{"|".join(services)}"']}
            )
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": f"slack-{DEFAULT_TEAM}",
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": "pagerduty",
                    "matchers": ['severity="page"'],
                    "group_wait": "10s",
                    "repeat_interval": "1h",
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
            {
                "name": "pagerduty",
                "pagerduty_configs": [
                    {
                        "routing_key_file": PAGERDUTY_KEY_FILE,
                        "send_resolved": True,
                        "severity": "critical",
                        "description": "{{ .CommonLabels.alertname }} {{ .CommonLabels.service }}"
                        ": {{ .CommonAnnotations.summary }}",
                        "details": {"runbook_url": "{{ .CommonAnnotations.runbook_url }}"},
                    }
                ],
            },
            *(_slack(team) for team in TEAMS),
        ],
    }
