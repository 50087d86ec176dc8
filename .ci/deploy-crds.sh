#!/usr/bin/env bash
# The CRDs the chart's custom resources need, as YAML, cached under
# ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-crds/<name>-<version>/ (a directory appears
# only when complete): Argo Rollouts, Argo CD, Istio 1.20 and the Prometheus operator from the Go
# module proxy (their repositories carry the YAML), Strimzi generated from its Java API model with
# Strimzi's own crd-generator (Maven Central; the jars hold no YAML).
#
# Usage: .ci/deploy-crds.sh          fetch/generate what is missing, print the directory
#        .ci/deploy-crds.sh files    print every CRD file, one a line
set -euo pipefail
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-crds
mkdir -p "$cache"
log() { echo "[deploy-crds] $(date +%H:%M:%S) $*" >&2; }

ROLLOUTS=v1.8.5
ARGOCD=v3.5.7
ISTIO=v1.20.0
PROMETHEUS_OPERATOR=v0.85.0
STRIMZI=0.45.0

moddir() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }

finish() {  # out tmp
  rm -rf "$1"; mv "$2" "$1"
}

from_module() {  # name module@version glob...
  local out=$cache/$1 mod dir tmp
  [ -d "$out" ] && return 0
  mod=$2
  shift 2
  dir=$(cd /tmp && moddir "$mod")
  tmp=$(mktemp -d "$out.XXXXXX")
  for g in "$@"; do cp $dir/$g "$tmp/"; done
  chmod -R u+w "$tmp"
  finish "$out" "$tmp"
  log "$out"
}

strimzi() {
  local out=$cache/strimzi-$STRIMZI tmp
  [ -d "$out" ] && return 0
  tmp=$(mktemp -d "$out.XXXXXX")
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>emporium.ci</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>$STRIMZI</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>$STRIMZI</version></dependency>
  </dependencies>
</project>
EOF
  (
    cd "$tmp"
    mvn -q -B dependency:build-classpath -Dmdep.outputFile=cp.txt >mvn.log 2>&1 || { cat mvn.log >&2; exit 1; }
    java -cp "$(cat cp.txt)" io.strimzi.crdgenerator.CrdGenerator --yaml --target-kube 1.16+ \
      --crd-api-version v1 --api-versions v1beta2 --storage-version v1beta2 \
      io.strimzi.api.kafka.model.kafka.Kafka="$PWD/kafka.yaml" \
      io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$PWD/kafkanodepool.yaml" \
      io.strimzi.api.kafka.model.topic.KafkaTopic="$PWD/kafkatopic.yaml" \
      io.strimzi.api.kafka.model.user.KafkaUser="$PWD/kafkauser.yaml" \
      io.strimzi.api.kafka.model.connect.KafkaConnect="$PWD/kafkaconnect.yaml" \
      io.strimzi.api.kafka.model.connector.KafkaConnector="$PWD/kafkaconnector.yaml" >gen.log 2>&1 ||
      { cat gen.log >&2; exit 1; }
    rm -f pom.xml cp.txt mvn.log gen.log
  ) || { rm -rf "$tmp"; return 1; }
  finish "$out" "$tmp"
  log "$out"
}

fetch_all() {
  from_module "argo-rollouts-$ROLLOUTS" "github.com/argoproj/argo-rollouts@$ROLLOUTS" 'manifests/crds/*-crd.yaml'
  from_module "argo-cd-$ARGOCD" "github.com/argoproj/argo-cd/v3@$ARGOCD" 'manifests/crds/*-crd.yaml'
  from_module "istio-$ISTIO" "istio.io/api@$ISTIO" kubernetes/customresourcedefinitions.gen.yaml
  from_module "prometheus-operator-$PROMETHEUS_OPERATOR" \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR" \
    'example/prometheus-operator-crd/monitoring.coreos.com_*.yaml'
  strimzi
}

exec 8>"$cache/.lock"
flock 8
fetch_all
case ${1:-} in
  files) find "$cache"/*-*/ -maxdepth 1 -name '*.yaml' | sort ;;
  *) echo "$cache" ;;
esac
