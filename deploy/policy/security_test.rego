package main

import rego.v1

container(kind, name, rest) := path(kind, name, array.concat(["spec", "template", "spec", "containers", "0"], rest))

test_root_pod_fails if {
	fails_with(broken([{"op": "remove", "path": path("Deployment", "user", ["spec", "template", "spec", "securityContext", "runAsNonRoot"])}]), "security: container user of Deployment/user may run as root")
}

test_container_overriding_non_root_fails if {
	fails_with(broken([{"op": "add", "path": container("Deployment", "user", ["securityContext", "runAsNonRoot"]), "value": false}]), "security: container user of Deployment/user may run as root")
}

test_capabilities_kept_fails if {
	fails_with(broken([{"op": "replace", "path": container("Deployment", "user", ["securityContext", "capabilities", "drop"]), "value": ["NET_RAW"]}]), "security: container user of Deployment/user does not drop ALL")
}

test_writable_root_fails if {
	fails_with(broken([{"op": "replace", "path": container("Rollout", "order", ["securityContext", "readOnlyRootFilesystem"]), "value": false}]), "security: container order of Rollout/order has a writable root filesystem")
}

test_privilege_escalation_fails if {
	fails_with(broken([{"op": "remove", "path": container("Rollout", "order", ["securityContext", "allowPrivilegeEscalation"])}]), "security: container order of Rollout/order allows privilege escalation")
}

test_job_containers_are_checked if {
	job := {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "emporium-migrate"}, "spec": {"template": {"spec": {
		"securityContext": {"runAsNonRoot": true},
		"containers": [{"name": "migrate", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}],
	}}}}
	release := broken([{"op": "add", "path": "/objects/-", "value": job}])
	fails_with(release, "security: container migrate of Job/emporium-migrate does not drop ALL")
}

test_no_peer_authentication_fails if {
	fails_with(broken([{"op": "remove", "path": path("PeerAuthentication", "default", [])}]), "mtls: no namespace-wide PeerAuthentication with mode STRICT")
}

test_permissive_mtls_fails if {
	fails_with(broken([{"op": "replace", "path": path("PeerAuthentication", "default", ["spec", "mtls", "mode"]), "value": "PERMISSIVE"}]), "mtls: no namespace-wide")
}

test_port_level_permissive_fails if {
	fails_with(broken([{"op": "add", "path": path("PeerAuthentication", "default", ["spec", "portLevelMtls"]), "value": {"9051": {"mode": "PERMISSIVE"}}}]), "mtls: PeerAuthentication default relaxes port 9051")
}

test_secret_with_data_fails if {
	secret := {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"url": "postgresql://u:p@db/x"}}
	fails_with(broken([{"op": "add", "path": "/objects/-", "value": secret}]), "secrets: Secret db carries stringData")
}

test_empty_secret_passes if {
	secret := {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "placeholder"}, "type": "Opaque"}
	not fails_with(broken([{"op": "add", "path": "/objects/-", "value": secret}]), "secrets:")
}

test_literal_password_env_fails if {
	some name in ["EMPORIUM_DB_PASSWORD", "API_TOKEN", "stripe_secret", "EMPORIUM_SIGNING_KEY"]
	env := {"name": name, "value": "hunter2"}
	release := broken([{"op": "add", "path": container("Deployment", "user", ["env", "-"]), "value": env}])
	fails_with(release, sprintf("secrets: env %s of container user in Deployment/user is a literal value", [name]))
}

test_key_file_path_is_not_a_secret if {
	not fails_with(good, "secrets:")
	not secret_name("EMPORIUM_SERVICE_KEY_FILE")
	secret_name("EMPORIUM_SERVICE_KEY")
}
