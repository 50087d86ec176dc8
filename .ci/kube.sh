#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without Docker: etcd, kube-apiserver, kube-scheduler,
# kube-controller-manager (built by .ci/deploy-tools.sh from the Go module proxy) and kwok, which
# plays the kubelets of six fake nodes in three zones (kwok-{a,b,c}-{1,2}, zones ap-northeast-2a/b/c)
# using kwok v0.8.0's default stages (.ci/kwok/stages.yaml): nodes become Ready, scheduled pods
# Running/Ready, deleted pods go away. Pods never run a container; everything else is the real thing.
#
# Usage: .ci/kube.sh start   start it (certificates, components, nodes), wait until the nodes are Ready,
#                            print `export KUBECONFIG=...`; on failure print the component logs, exit 1
#        .ci/kube.sh rollouts  start the Argo Rollouts controller (after its CRDs are installed:
#                            it refuses to start without them), wait until it is healthy
#        .ci/kube.sh stop    stop what start started (pid files in the work dir)
#        .ci/kube.sh env     print `export KUBECONFIG=...`
# Work dir: ${EMPORIUM_KUBE_WORK:-.ci/work/kube}. Ports (own loopback: run it in a sandbox/netns):
# etcd ${EMPORIUM_KUBE_ETCD_PORT:-2379}, API server ${EMPORIUM_KUBE_PORT:-6443}, Rollouts controller
# health ${EMPORIUM_KUBE_ROLLOUTS_PORT:-18091} and metrics (that port + 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_KUBE_WORK:-$here/work/kube}
mkdir -p "$work"
work=$(cd "$work" && pwd)
etcd_port=${EMPORIUM_KUBE_ETCD_PORT:-2379}
api_port=${EMPORIUM_KUBE_PORT:-6443}
kubeconfig=$work/admin.kubeconfig
log() { echo "[kube] $(date +%H:%M:%S) $*" >&2; }

certs() {
  local d=$work/pki
  [ -f "$d/done" ] && return 0
  rm -rf "$d"; mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=emporium-ci-ca" 2>/dev/null
    cat >apiserver.ext <<'EOF'
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr \
      -subj "/O=system:masters/CN=emporium-ci-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    touch done
  )
}

write_kubeconfig() {
  local d=$work/pki
  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: emporium-ci
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $d/ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: emporium-ci
  context: {cluster: emporium-ci, user: admin}
current-context: emporium-ci
EOF
}

# kwok renews each node's Lease (node-heartbeat-with-lease only refreshes conditions every ~10 min),
# so the node lifecycle controller keeps the nodes Ready. Background children of a non-interactive shell ignore SIGINT, so stop uses SIGTERM.
spawn() {  # name command...
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  echo $! >"$work/$name.pid"
}

dump_logs() {
  local f
  for f in "$work"/*.log; do
    [ -f "$f" ] || continue
    echo "===== $(basename "$f") (last 40 lines) =====" >&2
    tail -n 40 "$f" >&2
  done
}

fail() {
  log "FAILED: $*"
  dump_logs
  stop_all
  exit 1
}

wait_for() {  # seconds description command...
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "$what not ready after ${secs}s"
}

nodes_yaml() {
  local z n
  for z in a b c; do
    for n in 1 2; do
      cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-$z-$n
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-$z-$n
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    topology.kubernetes.io/zone: ap-northeast-2$z
    topology.kubernetes.io/region: ap-northeast-2
spec: {}
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "110"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110"}
  nodeInfo: {architecture: amd64, operatingSystem: linux, kubeletVersion: fake, kubeProxyVersion: fake}
EOF
    done
  done
}

nodes_ready() {
  local ready
  ready=$(kubectl --kubeconfig "$kubeconfig" get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
  [ "$ready" -ge 6 ]
}

start_all() {
  local t0=$SECONDS etcd apiserver scheduler cm kwok d=$work/pki
  [ -f "$work/kube-apiserver.pid" ] && kill -0 "$(cat "$work/kube-apiserver.pid")" 2>/dev/null &&
    { log "already running"; echo "export KUBECONFIG=$kubeconfig"; return 0; }
  etcd=$("$here/deploy-tools.sh" path etcd)
  apiserver=$("$here/deploy-tools.sh" path kube-apiserver)
  scheduler=$("$here/deploy-tools.sh" path kube-scheduler)
  cm=$("$here/deploy-tools.sh" path kube-controller-manager)
  kwok=$("$here/deploy-tools.sh" path kwok)
  command -v kubectl >/dev/null || fail "kubectl not on PATH"
  certs
  write_kubeconfig
  rm -rf "$work/etcd-data" "$work"/*.log
  spawn etcd "$etcd" --data-dir "$work/etcd-data" --name emporium-ci \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
    --initial-cluster "emporium-ci=http://127.0.0.1:$((etcd_port + 1))" \
    --unsafe-no-fsync --quota-backend-bytes 1073741824
  wait_for 20 etcd curl -sf "http://127.0.0.1:$etcd_port/health"
  mkdir -p "$work/apiserver-certs" "$work/cm-certs" "$work/scheduler-certs"
  # --endpoint-reconciler-type none: it advertises loopback, which the reconciler refuses.
  spawn kube-apiserver "$apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$work/apiserver-certs" \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" --client-ca-file "$d/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC \
    --endpoint-reconciler-type none --allow-privileged=true --profiling=false
  wait_for 60 kube-apiserver kubectl --kubeconfig "$kubeconfig" get --raw /readyz
  spawn kube-controller-manager "$cm" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --cert-dir "$work/cm-certs" --leader-elect=false \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" \
    --cluster-signing-cert-file "$d/ca.crt" --cluster-signing-key-file "$d/ca.key" \
    --use-service-account-credentials --controllers '*,-nodeipam'
  spawn kube-scheduler "$scheduler" --kubeconfig "$kubeconfig" \
    --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --cert-dir "$work/scheduler-certs" --leader-elect=false
  spawn kwok "$kwok" --kubeconfig "$kubeconfig" --manage-all-nodes=true \
    --config "$here/kwok/stages.yaml" --server-address 127.0.0.1:10247 --node-lease-duration-seconds 40
  nodes_yaml | kubectl --kubeconfig "$kubeconfig" apply -f - >/dev/null || fail "creating the nodes"
  wait_for 60 "six Ready nodes" nodes_ready
  # The controller-manager is working once it made the default namespace's ServiceAccount.
  wait_for 60 kube-controller-manager kubectl --kubeconfig "$kubeconfig" get serviceaccount default
  local p
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    kill -0 "$(cat "$work/$p.pid")" 2>/dev/null || fail "$p exited"
  done
  log "control plane up in $((SECONDS - t0)) s (KUBECONFIG=$kubeconfig)"
  echo "export KUBECONFIG=$kubeconfig"
}

# The Argo Rollouts controller, out of cluster like the other components: it acts on the Rollouts
# (ReplicaSets, Services' selectors, the Istio VirtualServices' weights, AnalysisRuns).
start_rollouts() {
  local bin port=${EMPORIUM_KUBE_ROLLOUTS_PORT:-18091}
  bin=$("$here/deploy-tools.sh" path rollouts-controller)
  [ -f "$work/rollouts-controller.pid" ] && kill -0 "$(cat "$work/rollouts-controller.pid")" 2>/dev/null &&
    { log "rollouts controller already running"; return 0; }
  spawn rollouts-controller "$bin" --kubeconfig "$kubeconfig" --leader-elect=false \
    --healthzPort "$port" --metricsport "$((port + 1))" --loglevel info
  wait_for 60 "rollouts controller" curl -sf "http://127.0.0.1:$port/healthz"
  log "rollouts controller up"
}

stop_all() {
  local p pid i
  for p in kwok kube-scheduler kube-controller-manager rollouts-controller kube-apiserver etcd; do
    [ -f "$work/$p.pid" ] || continue
    pid=$(cat "$work/$p.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$work/$p.pid"
  done
}

case ${1:-} in
  start) start_all ;;
  rollouts) start_rollouts ;;
  stop) stop_all; log "stopped" ;;
  env) echo "export KUBECONFIG=$kubeconfig" ;;
  *) echo "usage: $0 start|rollouts|stop|env" >&2; exit 2 ;;
esac
