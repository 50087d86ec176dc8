#!/usr/bin/env bash
# JSON schemas for kubeconform, offline, built once and cached (behind a lock) under
# ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-schemas/<key>/:
#   kubernetes/v1.30.0-local[-strict]/  Kubernetes 1.30, from PyPI's kubernetes-validate (its
#                                       copies carry an $id and /api/ refs kubeconform cannot
#                                       follow: dropped and rewritten, see ops-tooling notes)
#   crds/*.yaml                         the CRDs the chart uses (also installed into the real
#                                       API server by tests/deploy/test_cluster.py)
#   crd-schemas/<group>-<kind>_<version>.json  those CRDs converted by kubeconform's own script
# CRDs: Argo Rollouts v1.8.5, Argo CD v3.5.7, Istio 1.20 (istio.io/api), Prometheus operator
# v0.85.0, External Secrets v0.16.2 from the Go module proxy; Strimzi 0.45.0 generated from
# its Maven jars with its crd-generator (its jars hold no CRD YAML).
# Usage: .ci/deploy-schemas.sh [dir]   prints the cache directory (builds it when missing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VALIDATE=1.37.0
ROLLOUTS=v1.8.5 ARGOCD=v3.5.7 ISTIO_API=v1.20.0 PROM_OPERATOR=v0.85.0 ESO=v0.16.2 STRIMZI=0.45.0
KUBECONFORM=v0.8.0
key="k8s-$K8S_VALIDATE-ro-$ROLLOUTS-cd-$ARGOCD-istio-$ISTIO_API-po-$PROM_OPERATOR-eso-$ESO-strimzi-$STRIMZI"
base=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-schemas
out=$base/$key
log() { echo "[deploy-schemas] $*" >&2; }
mkdir -p "$base"

moddir() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }

build() {
  local tmp t0=$SECONDS py
  py=$(realpath "$(command -v "${PYTHON:-python3}")")  # needs PyYAML (the project venv has it)
  tmp=$(mktemp -d "$out.XXXXXX")
  trap 'rm -rf "$tmp"' ERR
  log "building into $out"
  # Kubernetes 1.30
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$tmp/pip" "kubernetes-validate==$K8S_VALIDATE" >&2
  python3 - "$tmp/pip/kubernetes_validate/kubernetes-json-schema" "$tmp/kubernetes" <<'PY'
import json, pathlib, sys
src, dst = map(pathlib.Path, sys.argv[1:])
for flavour in ("v1.30.0-local", "v1.30.0-local-strict"):
    (dst / flavour).mkdir(parents=True)
    for f in (src / flavour).glob("*.json"):
        text = f.read_text().replace('"/api/_definitions.json#', '"_definitions.json#')
        doc = json.loads(text)
        doc.pop("$id", None)
        (dst / flavour / f.name).write_text(json.dumps(doc))
PY
  rm -rf "$tmp/pip"
  # CRDs from the Go module proxy
  mkdir -p "$tmp/crds"
  local d
  d=$(moddir "github.com/argoproj/argo-rollouts@$ROLLOUTS")
  for f in rollout analysis-template cluster-analysis-template analysis-run experiment; do
    cp "$d/manifests/crds/$f-crd.yaml" "$tmp/crds/argo-rollouts-$f.yaml"
  done
  d=$(moddir "github.com/argoproj/argo-cd/v3@$ARGOCD")
  for f in application applicationset appproject; do cp "$d/manifests/crds/$f-crd.yaml" "$tmp/crds/argocd-$f.yaml"; done
  d=$(moddir "istio.io/api@$ISTIO_API")
  cp "$d/kubernetes/customresourcedefinitions.gen.yaml" "$tmp/crds/istio.yaml"
  d=$(moddir "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR")
  for f in podmonitors servicemonitors prometheusrules; do
    cp "$d/example/prometheus-operator-crd/monitoring.coreos.com_$f.yaml" "$tmp/crds/prometheus-operator-$f.yaml"
  done
  d=$(moddir "github.com/external-secrets/external-secrets@$ESO")
  cp "$d/deploy/crds/bundle.yaml" "$tmp/crds/external-secrets.yaml"
  # Strimzi, generated from its API jar
  mkdir -p "$tmp/strimzi"
  sed "s/@STRIMZI@/$STRIMZI/g" "$here/strimzi-crds.pom.xml" > "$tmp/strimzi/pom.xml"
  (cd "$tmp/strimzi" && mvn -q -B dependency:build-classpath -Dmdep.outputFile=cp.txt >&2)
  local m=io.strimzi.api.kafka.model
  java -cp "$(cat "$tmp/strimzi/cp.txt")" io.strimzi.crdgenerator.CrdGenerator --yaml \
    --target-kube 1.16+ --crd-api-version v1 --api-versions v1beta2 --storage-version v1beta2 \
    "$m.kafka.Kafka=$tmp/crds/strimzi-kafka.yaml" \
    "$m.nodepool.KafkaNodePool=$tmp/crds/strimzi-kafkanodepool.yaml" \
    "$m.topic.KafkaTopic=$tmp/crds/strimzi-kafkatopic.yaml" \
    "$m.connect.KafkaConnect=$tmp/crds/strimzi-kafkaconnect.yaml" \
    "$m.connector.KafkaConnector=$tmp/crds/strimzi-kafkaconnector.yaml" 2>/dev/null >&2
  rm -rf "$tmp/strimzi"
  # CRDs -> kubeconform schemas, with kubeconform's own converter
  d=$(moddir "github.com/yannh/kubeconform@$KUBECONFORM")
  mkdir -p "$tmp/crd-schemas"
  (cd "$tmp/crd-schemas" && FILENAME_FORMAT='{fullgroup}-{kind}_{version}' \
     "$py" "$d/scripts/openapi2jsonschema.py" "$tmp"/crds/*.yaml >/dev/null)
  rm -rf "$out"; mv "$tmp" "$out"
  log "built in $((SECONDS - t0)) s: $(ls "$out/crd-schemas" | wc -l) CRD schemas"
}

exec 8>"$base/.lock"
flock 8
[ -d "$out" ] || build
echo "$out"
