package main

import rego.v1

test_replicas_wrong_count_fails if {
	fails_with(broken([{"op": "replace", "path": path("Deployment", "user", ["spec", "replicas"]), "value": 1}]), "replicas: user has 1 replicas in test")
}

test_replicas_missing_service_fails if {
	fails_with(broken([{"op": "remove", "path": path("Deployment", "user", [])}]), "replicas: service user has no Deployment or Rollout")
}

test_replicas_default_is_one if {
	fails_with(broken([{"op": "remove", "path": path("Deployment", "user", ["spec", "replicas"])}]), "replicas: user has 1 replicas")
}

test_zone_spread_missing_fails if {
	fails_with(broken([{"op": "remove", "path": path("Deployment", "user", ["spec", "template", "spec", "topologySpreadConstraints", "0"])}]), "spread: Deployment/user has no topologySpreadConstraint on topology.kubernetes.io/zone")
}

test_hostname_spread_skew_two_fails if {
	fails_with(broken([{"op": "replace", "path": path("Rollout", "order", ["spec", "template", "spec", "topologySpreadConstraints", "1", "maxSkew"]), "value": 2}]), "spread: Rollout/order has no topologySpreadConstraint on kubernetes.io/hostname")
}

test_pdb_missing_fails if {
	fails_with(broken([{"op": "remove", "path": path("PodDisruptionBudget", "order", [])}]), "pdb: Rollout/order has 2 replicas and no PodDisruptionBudget")
}

test_pdb_selecting_other_pods_fails if {
	fails_with(broken([{"op": "replace", "path": path("PodDisruptionBudget", "user", ["spec", "selector", "matchLabels", "app.kubernetes.io~1name"]), "value": "users"}]), "pdb: Deployment/user")
}

test_single_replica_needs_no_pdb if {
	release := broken([
		{"op": "replace", "path": path("Deployment", "user", ["spec", "replicas"]), "value": 1},
		{"op": "remove", "path": path("PodDisruptionBudget", "user", [])},
	])
	not fails_with(release, "pdb:")
}

test_probes_missing_fails if {
	some probe in ["startupProbe", "readinessProbe", "livenessProbe"]
	release := broken([{"op": "remove", "path": path("Deployment", "user", ["spec", "template", "spec", "containers", "0", probe])}])
	fails_with(release, sprintf("probes: container user of Deployment/user has no %s", [probe]))
}

test_limits_missing_fails if {
	fails_with(broken([{"op": "remove", "path": path("Rollout", "order", ["spec", "template", "spec", "containers", "0", "resources", "limits", "memory"])}]), "resources: container order of Rollout/order has no limits.memory")
}

test_requests_missing_fails if {
	fails_with(broken([{"op": "remove", "path": path("Rollout", "order", ["spec", "template", "spec", "containers", "0", "resources", "requests"])}]), "resources: container order of Rollout/order has no requests.cpu")
}
