#!/usr/bin/env bash
# Emporium's OpenTelemetry Collector (deploy/observability/otelcol/builder.yaml), built with the
# collector builder from the Go module proxy and cached between runs on the same machine under
# ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/otelcol-<version>/ (the directory appears only
# when the build finished, so a killed build is simply redone; a lock makes concurrent callers
# wait for one build). CI starts `build` in the background; the trace tests wait for it.
#
# Usage: .ci/otelcol.sh build                 build it if missing (nice'd)
#        .ci/otelcol.sh path                  the binary's absolute path (waits for a build)
#        .ci/otelcol.sh built                 that path if it is built, else exit 1 (no build)
#        eval "$(.ci/otelcol.sh start)"       build if needed, start a collector writing every
#                                             span to a JSON-lines file; prints export lines
#        .ci/otelcol.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
manifest=$root/deploy/observability/otelcol/builder.yaml
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}
work=${EMPORIUM_CI_WORK:-$here/work}
log() { echo "[otelcol] $(date +%H:%M:%S) $*" >&2; }

BUILDER=v0.165.0
# The manifest's content is part of the cache key: a changed component list builds anew.
VERSION=$BUILDER-$(sha256sum "$manifest" | cut -c1-12)
out=$cache/otelcol-$VERSION
bin=$out/otelcol-emporium

OTLP_GRPC_PORT=${OTELCOL_GRPC_PORT:-54317}
OTLP_HTTP_PORT=${OTELCOL_HTTP_PORT:-54318}

build() {
  [ -x "$bin" ] && return 0
  log "building $bin (collector builder $BUILDER)"
  local t0=$SECONDS tmp gobin
  mkdir -p "$cache"
  tmp=$(mktemp -d "$out.XXXXXX")
  gobin=$cache/ocb-$BUILDER
  if [ ! -x "$gobin/builder" ]; then
    local g; g=$(mktemp -d "$gobin.XXXXXX")
    GOBIN=$g nice -n 19 go install -trimpath "go.opentelemetry.io/collector/cmd/builder@$BUILDER" >&2
    rm -rf "$gobin"; mv "$g" "$gobin"
  fi
  sed "s|^\(  output_path:\).*|\1 $tmp/src|" "$manifest" > "$tmp/builder.yaml"
  # The builder generates the sources only; the module is resolved here with `tidy -e`: the
  # builder's plain tidy also wants modules that only the components' own tests import, and
  # the module proxy does not serve all of them.
  (
    cd "$tmp"
    "$gobin/builder" --config="$tmp/builder.yaml" --skip-compilation --skip-get-modules
    cd src
    go mod init emporium.local/otelcol-emporium
    sed -n 's/^ *- gomod: *\([^ ]*\) \(v[^ ]*\).*/\1@\2/p' "$manifest" | while read -r m; do
      go mod edit -require="$m"
    done
    nice -n 19 go mod tidy -e
    nice -n 19 go build -trimpath -ldflags='-s -w' -o "$tmp/otelcol-emporium" .
  ) >&2
  rm -rf "$tmp/src"
  chmod 755 "$tmp"
  rm -rf "$out"; mv "$tmp" "$out"
  log "built in $((SECONDS - t0)) s: $(du -h "$bin" | cut -f1)"
}

with_lock() {
  mkdir -p "$cache"
  exec 9>"$cache/.otelcol.lock"
  flock 9
  "$@"
  flock -u 9
}

wait_port() { # port seconds
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || { log "port $1 did not open"; tail -20 "$work/otelcol.log" >&2; return 1; }
    sleep 0.3
  done
}

start() {
  with_lock build
  mkdir -p "$work"
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$OTLP_GRPC_PORT") 2>/dev/null; then
    cat > "$work/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:$OTLP_GRPC_PORT"}
      http: {endpoint: "127.0.0.1:$OTLP_HTTP_PORT"}
processors:
  batch: {timeout: 200ms}
exporters:
  file: {path: "$work/otelcol-spans.jsonl", flush_interval: 200ms}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [file]}
YAML
    nohup "$bin" --config="$work/otelcol.yaml" > "$work/otelcol.log" 2>&1 &
    echo $! > "$work/otelcol.pid"
    wait_port "$OTLP_GRPC_PORT" 30
  fi
  echo "export EMPORIUM_TEST_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_GRPC_PORT"
  echo "export EMPORIUM_TEST_OTLP_SPANS_FILE=$work/otelcol-spans.jsonl"
}

stop() {
  [ -f "$work/otelcol.pid" ] && kill "$(cat "$work/otelcol.pid")" 2>/dev/null || true
  rm -f "$work/otelcol.pid"
}

case ${1:-build} in
  build) with_lock build ;;
  path) with_lock build; echo "$bin" ;;
  built) [ -x "$bin" ] || { echo "not built: $bin (run $0 build)" >&2; exit 1; }; echo "$bin" ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 build | path | built | start | stop" >&2; exit 2 ;;
esac
