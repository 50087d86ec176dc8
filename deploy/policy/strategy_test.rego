package main

import rego.v1

strategy(kind, name, rest) := path(kind, name, array.concat(["spec", "strategy"], rest))

test_canary_service_as_deployment_fails if {
	release := broken([{"op": "replace", "path": path("Rollout", "order", ["kind"]), "value": "Deployment"}])
	fails_with(release, "strategy: order must be an Argo Rollout (canary), not a Deployment")
}

test_canary_as_blue_green_fails if {
	release := broken([{"op": "replace", "path": strategy("Rollout", "order", []), "value": {"blueGreen": {"activeService": "order"}}}])
	fails_with(release, "strategy: Rollout order must use the canary strategy")
}

test_canary_without_analysis_fails if {
	fails_with(broken([{"op": "remove", "path": strategy("Rollout", "order", ["canary", "analysis"])}]), "strategy: canary of order has no background analysis")
}

test_canary_without_pause_fails if {
	fails_with(broken([{"op": "remove", "path": strategy("Rollout", "order", ["canary", "steps", "1"])}]), "strategy: canary of order has no setWeight steps with pauses")
}

test_gateway_without_blue_green_fails if {
	release := broken([{"op": "replace", "path": strategy("Rollout", "api-gateway", []), "value": {"canary": {}}}])
	fails_with(release, "strategy: api-gateway must be an Argo Rollout with the blueGreen strategy")
}

test_gateway_preview_service_missing_fails if {
	fails_with(broken([{"op": "remove", "path": path("Service", "api-gateway-preview", [])}]), "strategy: blue-green of api-gateway has no rendered preview Service")
}

test_gateway_without_pre_promotion_analysis_fails if {
	fails_with(broken([{"op": "remove", "path": strategy("Rollout", "api-gateway", ["blueGreen", "prePromotionAnalysis"])}]), "strategy: blue-green of api-gateway has no prePromotionAnalysis")
}

test_gateway_auto_promotion_in_production_fails if {
	release := json.patch(broken([{"op": "remove", "path": strategy("Rollout", "api-gateway", ["blueGreen", "autoPromotionEnabled"])}]), [{"op": "replace", "path": "/env", "value": "production"}])
	msgs := deny with input as release with data.replicas as {"production": {}} with data.canary as ["order"] with data.blue_green as ["api-gateway"]
	"strategy: blue-green of api-gateway must not promote automatically in production" in msgs
}

test_gateway_auto_promotion_outside_production_passes if {
	release := broken([{"op": "replace", "path": strategy("Rollout", "api-gateway", ["blueGreen", "autoPromotionEnabled"]), "value": true}])
	not fails_with(release, "strategy:")
}

test_rolling_with_max_unavailable_fails if {
	fails_with(broken([{"op": "replace", "path": strategy("Deployment", "user", ["rollingUpdate", "maxUnavailable"]), "value": 1}]), "strategy: Deployment/user must roll with RollingUpdate and maxUnavailable 0")
}

test_recreate_fails if {
	fails_with(broken([{"op": "replace", "path": strategy("Deployment", "user", []), "value": {"type": "Recreate"}}]), "strategy: Deployment/user must roll with RollingUpdate")
}
