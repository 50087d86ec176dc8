# Seed security rules: non-root pods, no capabilities, read-only root filesystem, STRICT mTLS,
# and no secret literals anywhere in the chart's output.
package main

import data.lib

run_as_non_root(spec, c) if c.securityContext.runAsNonRoot == true

run_as_non_root(spec, c) if {
	spec.securityContext.runAsNonRoot == true
	not c.securityContext.runAsNonRoot == false
}

deny contains msg if {
	some [ref, spec] in lib.pod_specs
	some c in spec.containers
	not run_as_non_root(spec, c)
	msg := sprintf("security: container %s of %s may run as root (runAsNonRoot is not true)", [c.name, ref])
}

deny contains msg if {
	some [ref, c] in lib.containers
	not "ALL" in object.get(c, ["securityContext", "capabilities", "drop"], [])
	msg := sprintf("security: container %s of %s does not drop ALL capabilities", [c.name, ref])
}

deny contains msg if {
	some [ref, c] in lib.containers
	not c.securityContext.readOnlyRootFilesystem == true
	msg := sprintf("security: container %s of %s has a writable root filesystem", [c.name, ref])
}

deny contains msg if {
	some [ref, c] in lib.containers
	not c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("security: container %s of %s allows privilege escalation", [c.name, ref])
}

strict_mtls if {
	some obj in input.objects
	obj.kind == "PeerAuthentication"
	obj.spec.mtls.mode == "STRICT"
	not obj.spec.selector
}

deny contains "mtls: no namespace-wide PeerAuthentication with mode STRICT" if not strict_mtls

deny contains msg if {
	some obj in input.objects
	obj.kind == "PeerAuthentication"
	some port, m in object.get(obj.spec, "portLevelMtls", {})
	m.mode != "STRICT"
	msg := sprintf("mtls: PeerAuthentication %s relaxes port %v to %s", [obj.metadata.name, port, m.mode])
}

deny contains msg if {
	some obj in input.objects
	obj.kind == "Secret"
	some field in ["data", "stringData"]
	count(object.get(obj, field, {})) > 0
	msg := sprintf("secrets: Secret %s carries %s in the chart (use an existing Secret or an ExternalSecret)", [obj.metadata.name, field])
}

# A name that says it holds a secret; *_FILE / *_PATH name where a mounted secret is, not one.
secret_name(name) if {
	regex.match(`(PASSWORD|PASSWD|SECRET|KEY|TOKEN|CREDENTIAL)`, upper(name))
	not regex.match(`_(FILE|PATH|DIR)$`, upper(name))
}

deny contains msg if {
	some [ref, c] in lib.containers
	some e in object.get(c, "env", [])
	secret_name(e.name)
	e.value
	msg := sprintf("secrets: env %s of container %s in %s is a literal value (use valueFrom.secretKeyRef)", [e.name, c.name, ref])
}
