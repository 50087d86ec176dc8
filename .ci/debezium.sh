#!/usr/bin/env bash
# Debezium for the CDC tests: resolves Debezium's embedded engine and PostgreSQL connector
# (.ci/debezium/pom.xml, from Maven Central) and compiles the small outbox launcher next to
# it (.ci/debezium/src), cached under ${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/debezium
# by a hash of those files. The tests start the launcher themselves, one per set of outbox
# databases (tests/cdc_support.py); `stop` ends any the tests left behind.
# Usage: eval "$(.ci/debezium.sh start)"   |   .ci/debezium.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_CI_WORK:-$here/work}/debezium
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}/debezium
log() { echo "[debezium] $*" >&2; }

build() {
  local sources lib classes tmp
  sources=$(find "$here/debezium/src" -name '*.java' | sort)
  # The jars are keyed by the pom, the compiled launcher by the pom and its sources.
  lib=$cache/lib-$(sha256sum < "$here/debezium/pom.xml" | cut -c1-16)
  classes=$cache/classes-$(cat "$here/debezium/pom.xml" $sources | sha256sum | cut -c1-16)
  mkdir -p "$cache"
  if [ ! -f "$lib/.complete" ]; then
    log "resolving Debezium from Maven Central into $lib"
    tmp=$(mktemp -d "$lib.XXXXXX")
    mvn -q -B -f "$here/debezium/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp" >&2
    rm -rf "$lib"; mv "$tmp" "$lib"; touch "$lib/.complete"
  fi
  if [ ! -f "$classes/.complete" ]; then
    log "compiling the outbox launcher into $classes"
    tmp=$(mktemp -d "$classes.XXXXXX")
    # shellcheck disable=SC2086
    javac --release 17 -nowarn -cp "$lib/*" -d "$tmp" $sources >&2
    rm -rf "$classes"; mv "$tmp" "$classes"; touch "$classes/.complete"
  fi
  mkdir -p "$work/pids"
  # The command the tests run: records its pid (for `stop`), then becomes the JVM.
  cat > "$work/launcher" <<SH
#!/usr/bin/env bash
echo \$\$ > "$work/pids/\$\$"
exec java -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \\
  -Dorg.slf4j.simpleLogger.defaultLogLevel=\${EMPORIUM_DEBEZIUM_LOG_LEVEL:-info} \\
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka=warn \\
  -Dorg.slf4j.simpleLogger.showDateTime=true \\
  -cp "$classes:$lib/*" emporium.cdc.OutboxLauncher "\$@"
SH
  chmod +x "$work/launcher"
  echo "export EMPORIUM_TEST_DEBEZIUM_LAUNCHER=$work/launcher"
}

stop_all() {
  local f pid
  for f in "$work"/pids/*; do
    [ -e "$f" ] || continue
    pid=$(basename "$f")
    # only a launcher of ours (a pid file can outlive its process, and pids are reused)
    if grep -q emporium.cdc.OutboxLauncher "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid" && log "stopped a launcher left running (pid $pid)" || true
    fi
    rm -f "$f"
  done
}

case "${1:-start}" in
  start) command -v mvn >/dev/null && command -v javac >/dev/null || { log "needs mvn and javac"; exit 1; }
         build ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
