# Helpers shared by the policies. The input is one rendered release:
# {"env": "<dev|staging|production>", "objects": [<every object helm template printed>]}.
package lib

workload_kinds := {"Deployment", "Rollout", "StatefulSet", "DaemonSet"}

pod_kinds := workload_kinds | {"Job"}

# Objects of the service workloads (Deployments and Rollouts), by name.
workloads[name] := obj if {
	some obj in input.objects
	obj.kind in workload_kinds
	name := obj.metadata.name
}

# Every pod template in the release (workloads and Jobs), as [ref, pod spec].
pod_specs contains [ref, obj.spec.template.spec] if {
	some obj in input.objects
	obj.kind in pod_kinds
	ref := sprintf("%s/%s", [obj.kind, obj.metadata.name])
}

containers contains [ref, c] if {
	some [ref, spec] in pod_specs
	some c in array.concat(object.get(spec, "containers", []), object.get(spec, "initContainers", []))
}

replicas(obj) := object.get(obj.spec, "replicas", 1)
