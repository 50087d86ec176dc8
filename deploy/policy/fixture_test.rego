# A small release that keeps every rule (a gateway, a canary service and a rolling one), and the
# helpers the unit tests use to break it one way at a time.
package main

import rego.v1

fixture_replicas := {"test": {"api-gateway": 2, "order": 2, "user": 2}}

labels(name) := {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "emporium"}

probe(path) := {"httpGet": {"path": path, "port": "http"}}

pod(name) := {
	"metadata": {"labels": labels(name)},
	"spec": {
		"serviceAccountName": name,
		"securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
		"topologySpreadConstraints": [
			{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": labels(name)}},
			{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": labels(name)}},
		],
		"containers": [{
			"name": name,
			"image": "emporium:1",
			"env": [
				{"name": "EMPORIUM_SERVICE_KEY_FILE", "value": "/etc/emporium/keys/service.key"},
				{"name": "EMPORIUM_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
			],
			"startupProbe": probe("/healthz"),
			"readinessProbe": probe("/healthz"),
			"livenessProbe": probe("/livez"),
			"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
			"securityContext": {
				"allowPrivilegeEscalation": false,
				"readOnlyRootFilesystem": true,
				"capabilities": {"drop": ["ALL"]},
			},
		}],
	},
}

meta(name) := {"name": name, "labels": labels(name)}

pdb(name) := {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(name), "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name)}}}

service(name) := {"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": {"selector": labels(name)}}

good := {"env": "test", "objects": [
	{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": meta("api-gateway"), "spec": {
		"replicas": 2, "template": pod("api-gateway"),
		"strategy": {"blueGreen": {
			"activeService": "api-gateway", "previewService": "api-gateway-preview",
			"autoPromotionEnabled": false,
			"prePromotionAnalysis": {"templates": [{"templateName": "emporium-slo-http"}]},
		}},
	}},
	{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": meta("order"), "spec": {
		"replicas": 2, "template": pod("order"),
		"strategy": {"canary": {
			"analysis": {"templates": [{"templateName": "emporium-slo-grpc"}]},
			"steps": [{"setWeight": 10}, {"pause": {"duration": "2m"}}],
		}},
	}},
	{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("user"), "spec": {
		"replicas": 2, "template": pod("user"),
		"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
	}},
	service("api-gateway"), service("api-gateway-preview"), service("order"), service("user"),
	pdb("api-gateway"), pdb("order"), pdb("user"),
	{"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication", "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}},
]}

# The deny messages for `release` under the test tables.
denies(release) := msgs if {
	msgs := deny with input as release
		with data.replicas as fixture_replicas
		with data.canary as ["order"]
		with data.blue_green as ["api-gateway"]
}

# `good` with one JSON patch applied.
broken(ops) := json.patch(good, ops)

# Index of an object in good.objects.
at(kind, name) := i if {
	some i, obj in good.objects
	obj.kind == kind
	obj.metadata.name == name
}

path(kind, name, rest) := concat("/", array.concat(["", "objects", sprintf("%d", [at(kind, name)])], rest))

# True when some deny message of `release` starts with `prefix`.
fails_with(release, prefix) if {
	some msg in denies(release)
	startswith(msg, prefix)
}

test_good_release_passes if count(denies(good)) == 0
