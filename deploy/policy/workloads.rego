# Seed rules for the service workloads that no schema states: replicas per service and
# environment, zone and hostname spread, PDBs, probes, requests and limits.
package main

import data.lib

deny contains msg if {
	some name, want in data.replicas[input.env]
	not lib.workloads[name]
	msg := sprintf("replicas: service %s has no Deployment or Rollout in %s", [name, input.env])
}

deny contains msg if {
	some name, want in data.replicas[input.env]
	got := lib.replicas(lib.workloads[name])
	got != want
	msg := sprintf("replicas: %s has %d replicas in %s, the seed runs %d", [name, got, input.env, want])
}

spread_ok(spec, key) if {
	some t in spec.topologySpreadConstraints
	t.topologyKey == key
	t.maxSkew == 1
}

deny contains msg if {
	some name, obj in lib.workloads
	some key in ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
	not spread_ok(obj.spec.template.spec, key)
	msg := sprintf("spread: %s/%s has no topologySpreadConstraint on %s with maxSkew 1", [obj.kind, name, key])
}

pdb_selects(pdb, obj) if {
	pdb.kind == "PodDisruptionBudget"
	labels := obj.spec.template.metadata.labels
	every k, v in pdb.spec.selector.matchLabels {
		labels[k] == v
	}
}

deny contains msg if {
	some name, obj in lib.workloads
	lib.replicas(obj) > 1
	not any_pdb(obj)
	msg := sprintf("pdb: %s/%s has %d replicas and no PodDisruptionBudget selecting its pods", [obj.kind, name, lib.replicas(obj)])
}

any_pdb(obj) if {
	some pdb in input.objects
	pdb_selects(pdb, obj)
}

deny contains msg if {
	some name, obj in lib.workloads
	some c in obj.spec.template.spec.containers
	some probe in ["startupProbe", "readinessProbe", "livenessProbe"]
	not c[probe]
	msg := sprintf("probes: container %s of %s/%s has no %s", [c.name, obj.kind, name, probe])
}

deny contains msg if {
	some [ref, c] in lib.containers
	some part in ["requests", "limits"]
	some res in ["cpu", "memory"]
	not c.resources[part][res]
	msg := sprintf("resources: container %s of %s has no %s.%s", [c.name, ref, part, res])
}
