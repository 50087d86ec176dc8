#!/usr/bin/env bash
# The deployment checks' tools, built from the Go module proxy and cached between runs on the
# same machine under ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-tools/<tool>-<version>
# (a directory appears only when its build finished, so a killed build is simply redone).
# A lock makes concurrent callers wait for one build instead of racing it: CI starts `build` in
# the background at its beginning (nice'd, so the tests keep the CPU) and the deployment tests
# call `ensure`, which waits for it.
#
# Usage: .ci/deploy-tools.sh build            build whatever is missing (all tools)
#        .ci/deploy-tools.sh build helm ...   only these
#        eval "$(.ci/deploy-tools.sh env)"    PATH with the tools (waits for a running build)
#        .ci/deploy-tools.sh path TOOL        the absolute path of one tool's binary
set -euo pipefail
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/deploy-tools
mkdir -p "$cache"
log() { echo "[deploy-tools] $(date +%H:%M:%S) $*" >&2; }

HELM=v3.22.0
KUBECONFORM=v0.8.0
CONFTEST=v0.71.1
KWOK=v0.8.0
ETCD=v3.6.16
KUBERNETES=v1.37.2   # kube-apiserver, kube-scheduler, kube-controller-manager
ROLLOUTS=v1.8.5      # the Argo Rollouts controller (1.9+ needs a newer Go)
ALL_TOOLS="helm kubeconform conftest kwok etcd kube rollouts"

dir_of() {
  case $1 in
    helm) echo "$cache/helm-$HELM" ;;
    kubeconform) echo "$cache/kubeconform-$KUBECONFORM" ;;
    conftest) echo "$cache/conftest-$CONFTEST" ;;
    kwok) echo "$cache/kwok-$KWOK" ;;
    etcd) echo "$cache/etcd-$ETCD" ;;
    # "-versioned": built with the version ldflags (an older cache dir without them says v0.0.0).
    kube|kube-apiserver|kube-scheduler|kube-controller-manager) echo "$cache/kube-$KUBERNETES-versioned" ;;
    rollouts|rollouts-controller) echo "$cache/rollouts-$ROLLOUTS" ;;
    *) echo "unknown tool: $1" >&2; return 2 ;;
  esac
}

# go install of a main package into a finished-only directory.
go_install() {  # tool module@version
  local out=$1 pkg=$2 tmp
  tmp=$(mktemp -d "$out.XXXXXX")
  GOBIN=$tmp go install -trimpath -ldflags='-s -w' "$pkg" >&2
  rm -rf "$out"; mv "$tmp" "$out"
}

# etcd and Kubernetes refuse `go install` (replace directives): build them in a scratch module.
scratch_build() {  # out-dir ldflags requires-script version packages...
  local out=$1 ldflags=$2 requires=$3 version=$4 tmp mod
  shift 4
  tmp=$(mktemp -d "$out.XXXXXX")
  mod=$(mktemp -d "$cache/mod.XXXXXX")
  (
    cd "$mod"
    go mod init emporium.local/tools >/dev/null 2>&1
    eval "$requires"
    # `go get` of the packages themselves records them and their go.sum lines (`go mod tidy`
    # would drop requirements that no source file of the scratch module imports). Each at
    # the pinned version: a bare package path means @upgrade, the newest release (argo-rollouts
    # v1.10.2 appeared and wanted a newer Go).
    go get "${@/%/@$version}" >/dev/null
    go build -trimpath -ldflags="-s -w $ldflags" -o "$tmp/" "$@"
  ) >&2
  rm -rf "$mod" "$out"; mv "$tmp" "$out"
}

# What `make` in a Kubernetes checkout stamps into the binaries: without it they report v0.0.0,
# which helm's `kubeVersion` constraint refuses.
kube_ldflags() {
  local minor=${KUBERNETES#v1.}
  minor=${minor%%.*}
  local v="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v="$v -X $p.gitVersion=$KUBERNETES -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    v="$v -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$v"
}

# Argo Rollouts points k8s.io/* at v0.0.0 and replaces them with releases: a module that requires
# it must carry the same replace directives (go does not apply a dependency's).
rollouts_requires() {
  local gomod
  gomod=$(go mod download -json "github.com/argoproj/argo-rollouts@$ROLLOUTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  awk '/^replace \(/{f=1;next} f&&/^\)/{f=0} f{print} /^replace [^(]/{sub(/^replace /,""); print}' "$gomod" |
    sed -E 's/ v0\.0\.0 =>/ =>/; s/^([^ ]+) => ([^ ]+) ([^ ]+)$/\1=\2@\3/' | while read -r r; do
      go mod edit -replace="$r"
    done
  go mod edit -require="github.com/argoproj/argo-rollouts@$ROLLOUTS"
}

kube_requires() {
  # k8s.io/kubernetes points its 33 staging modules at ./staging; point them at their releases.
  local gomod minor
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  minor=${KUBERNETES#v1.}
  go mod edit -require="k8s.io/kubernetes@$KUBERNETES"
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk '{print $1}' | while read -r m; do
    go mod edit -replace="$m=$m@v0.$minor"
  done
}

build_one() {
  local tool=$1 out
  out=$(dir_of "$tool")
  [ -d "$out" ] && return 0
  log "building $tool into $out"
  local t0=$SECONDS
  case $tool in
    helm) go_install "$out" "helm.sh/helm/v3/cmd/helm@$HELM" ;;
    kubeconform) go_install "$out" "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM" ;;
    conftest) go_install "$out" "github.com/open-policy-agent/conftest@$CONFTEST" ;;
    kwok) go_install "$out" "sigs.k8s.io/kwok/cmd/kwok@$KWOK" ;;
    etcd) scratch_build "$out" "" : "$ETCD" \
            go.etcd.io/etcd/server/v3
          mv "$out/server" "$out/etcd" ;;  # go names a /v3 module's binary after its parent
    kube) scratch_build "$out" "$(kube_ldflags)" kube_requires "$KUBERNETES" \
            k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler \
            k8s.io/kubernetes/cmd/kube-controller-manager ;;
    rollouts) scratch_build "$out" "" rollouts_requires "$ROLLOUTS" \
            github.com/argoproj/argo-rollouts/cmd/rollouts-controller ;;
  esac
  log "built $tool in $((SECONDS - t0)) s"
}

with_lock() {
  exec 8>"$cache/.lock"
  flock 8
  "$@"
  flock -u 8
}

build_all() {
  local tools=${*:-$ALL_TOOLS} t
  for t in $tools; do build_one "$t"; done
}

cmd=${1:-build}
shift || true
case $cmd in
  build) with_lock build_all "$@" ;;
  env)
    with_lock build_all
    p=""
    for t in $ALL_TOOLS; do p="$p$(dir_of "$t"):"; done
    echo "export PATH=\"$p\$PATH\"" ;;
  path)
    with_lock build_all "$1"
    t=$1
    echo "$(dir_of "$t")/$t" ;;
  *) echo "usage: $0 build [tool...] | env | path TOOL" >&2; exit 2 ;;
esac
