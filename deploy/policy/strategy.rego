# Release strategies of issue 9: canary with analysis for order and payment, blue-green with a
# preview service and pre-promotion analysis for api-gateway (manual in production), rolling
# with maxUnavailable 0 for every other service.
package main

import data.lib

deny contains msg if {
	some name in data.canary
	obj := lib.workloads[name]
	not obj.kind == "Rollout"
	msg := sprintf("strategy: %s must be an Argo Rollout (canary), not a %s", [name, obj.kind])
}

deny contains msg if {
	some name in data.canary
	obj := lib.workloads[name]
	obj.kind == "Rollout"
	not obj.spec.strategy.canary
	msg := sprintf("strategy: Rollout %s must use the canary strategy", [name])
}

deny contains msg if {
	some name in data.canary
	canary := lib.workloads[name].spec.strategy.canary
	not canary.analysis.templates
	msg := sprintf("strategy: canary of %s has no background analysis", [name])
}

deny contains msg if {
	some name in data.canary
	canary := lib.workloads[name].spec.strategy.canary
	not weighted(canary)
	msg := sprintf("strategy: canary of %s has no setWeight steps with pauses", [name])
}

weighted(canary) if {
	some s in canary.steps
	s.setWeight
	some p in canary.steps
	p.pause
}

deny contains msg if {
	some name in data.blue_green
	obj := lib.workloads[name]
	not obj.spec.strategy.blueGreen
	msg := sprintf("strategy: %s must be an Argo Rollout with the blueGreen strategy", [name])
}

deny contains msg if {
	some name in data.blue_green
	bg := lib.workloads[name].spec.strategy.blueGreen
	not service_named(bg.previewService)
	msg := sprintf("strategy: blue-green of %s has no rendered preview Service", [name])
}

deny contains msg if {
	some name in data.blue_green
	bg := lib.workloads[name].spec.strategy.blueGreen
	not bg.prePromotionAnalysis.templates
	msg := sprintf("strategy: blue-green of %s has no prePromotionAnalysis", [name])
}

deny contains msg if {
	input.env == "production"
	some name in data.blue_green
	bg := lib.workloads[name].spec.strategy.blueGreen
	not bg.autoPromotionEnabled == false
	msg := sprintf("strategy: blue-green of %s must not promote automatically in production", [name])
}

service_named(name) if {
	some obj in input.objects
	obj.kind == "Service"
	obj.metadata.name == name
}

deny contains msg if {
	some name, obj in lib.workloads
	not name in data.canary
	not name in data.blue_green
	obj.metadata.labels["app.kubernetes.io/part-of"] == "emporium"
	not rolling_safe(obj)
	msg := sprintf("strategy: %s/%s must roll with RollingUpdate and maxUnavailable 0", [obj.kind, name])
}

rolling_safe(obj) if {
	obj.kind == "Deployment"
	obj.spec.strategy.type == "RollingUpdate"
	obj.spec.strategy.rollingUpdate.maxUnavailable == 0
}
