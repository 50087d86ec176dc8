#!/usr/bin/env bash
# A three-node KRaft Kafka cluster on loopback, as the seed runs Kafka in production (three
# brokers, three controllers; replication factor 3, min.insync.replicas 2), with no Docker:
# the broker jars come from Maven Central (`org.apache.kafka:kafka_2.13`) and run on the
# machine's JDK. ZooKeeper is gone (Kafka 4 removed it): the controllers are a Raft quorum.
#
# Each node runs in combined mode (`process.roles=broker,controller`): three JVMs instead of
# six on a 2-core CI machine, and a quorum of three voters all the same. Stopping one node
# therefore takes away a broker *and* a controller, which is the harder case for the chaos
# test (the production manifests keep the roles in separate pools).
#
# For tests that stop and restart a node, every node has under $work/kafka/node-N/:
#   start   (starts the node in the background, writes `pid`)   pid   port   server.properties
# and `EMPORIUM_TEST_KAFKA_CLUSTER_DIR` (printed below) points at $work/kafka.
#
# Usage: eval "$(.ci/kafka-cluster.sh start)"   |   .ci/kafka-cluster.sh stop
# Called by .ci/backends.sh (start_kafka, stop_all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_CI_WORK:-$here/work}
cache=${EMPORIUM_CI_CACHE:-$HOME/.cache/emporium-ci}
mkdir -p "$work"
log() { echo "[kafka] $*" >&2; }

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
# Kafka logs through SLF4J 2; the broker's pom leaves the binding out (and Maven's nearest-wins
# picks an SLF4J 1 API), so both are named: without them the nodes log nothing at all.
SLF4J_VERSION=${SLF4J_VERSION:-2.0.17}
LOG4J_VERSION=${LOG4J_VERSION:-2.24.3}
KAFKA_NODES=${KAFKA_NODES:-3}
KAFKA_PORT=${KAFKA_PORT:-59092}                      # node N's client port: + 2*(N-1)
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-59093} # node N's controller port: + 2*(N-1)
KAFKA_HEAP=${KAFKA_HEAP:-320m}
KAFKA_START_SECONDS=${KAFKA_START_SECONDS:-180}
# What the seed runs: every partition on three brokers, a write acknowledged by two of them.
KAFKA_REPLICATION_FACTOR=${KAFKA_REPLICATION_FACTOR:-$((KAFKA_NODES < 3 ? KAFKA_NODES : 3))}
KAFKA_MIN_ISR=${KAFKA_MIN_ISR:-$((KAFKA_REPLICATION_FACTOR > 1 ? 2 : 1))}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-3}
cluster=$work/kafka

client_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

jars_dir() {
  local jars=$cache/kafka-jars-$KAFKA_VERSION-log4j-$LOG4J_VERSION
  if [ ! -f "$jars/.complete" ]; then
    log "resolving kafka_2.13:$KAFKA_VERSION from Maven Central"
    rm -rf "$jars"
    mkdir -p "$work/kafka-pom" "$jars"
    cat > "$work/kafka-pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>emporium.ci</groupId><artifactId>kafka-broker</artifactId><version>1</version><packaging>pom</packaging>
<dependencies><dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
<version>$KAFKA_VERSION</version></dependency>
<dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
<dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
<version>$LOG4J_VERSION</version></dependency></dependencies></project>
POM
    (cd "$work/kafka-pom" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$jars" >&2)
    cat > "$jars/log4j2.properties" <<'LOG'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
LOG
    touch "$jars/.complete"
  fi
  echo "$jars"
}

voters() {
  local i out=""
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    out+="${out:+,}$i@127.0.0.1:$(controller_port "$i")"
  done
  echo "$out"
}

bootstrap() {
  local i out=""
  for ((i = 1; i <= KAFKA_NODES; i++)); do out+="${out:+,}127.0.0.1:$(client_port "$i")"; done
  echo "$out"
}

write_node() { # node-number jars-dir cluster-id
  local n=$1 jars=$2 cid=$3 dir=$cluster/node-$1
  mkdir -p "$dir/data"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
listeners=PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$n")
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=$(voters)
log.dirs=$dir/data
# Topics: nothing is created implicitly (a typo must not make a one-replica topic); the
# adapter creates what it uses with the spec of its bus URL, these defaults agree with it.
auto.create.topics.enable=false
num.partitions=$KAFKA_PARTITIONS
default.replication.factor=$KAFKA_REPLICATION_FACTOR
min.insync.replicas=$KAFKA_MIN_ISR
unclean.leader.election.enable=false
offsets.topic.replication.factor=$KAFKA_REPLICATION_FACTOR
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=$KAFKA_REPLICATION_FACTOR
transaction.state.log.min.isr=$KAFKA_MIN_ISR
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION_FACTOR
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
group.initial.rebalance.delay.ms=0
# A stopped node is fenced (and dropped from every ISR) after 6 s instead of 9 s (3 s made
# loaded CI machines fence healthy nodes whose heartbeats waited in a busy controller).
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
# Small machine: few threads, a small cleaner buffer (the default 128 MiB would be most of
# the heap).
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
PROPS
  echo "$(client_port "$n")" > "$dir/port"
  cat > "$dir/start" <<START
#!/usr/bin/env bash
# Starts Kafka node $n in the background (used by CI and by tests that restart a node).
cd "$dir"
nohup java -Xms64m -Xmx$KAFKA_HEAP -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \\
  -Dlog4j2.configurationFile="$jars/log4j2.properties" -cp "$jars/*" kafka.Kafka "$dir/server.properties" >> "$work/kafka-$n.log" 2>&1 &
echo \$! > "$dir/pid"
START
  chmod +x "$dir/start"
  java -Dlog4j2.configurationFile="$jars/log4j2.properties" -cp "$jars/*" \
    kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" --ignore-formatted \
    >/dev/null
}

fail_with_logs() {
  log "$1"
  local i
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    echo "----- $work/kafka-$i.log (last 40 lines) -----" >&2
    tail -n 40 "$work/kafka-$i.log" >&2 2>/dev/null || true
  done
  exit 1
}

wait_started() {
  local deadline=$((SECONDS + KAFKA_START_SECONDS)) i
  for ((i = 1; i <= KAFKA_NODES; i++)); do
    until port_open "$(client_port "$i")" && grep -q "Kafka Server started" "$work/kafka-$i.log"; do
      kill -0 "$(cat "$cluster/node-$i/pid")" 2>/dev/null || fail_with_logs "node $i exited"
      ((SECONDS < deadline)) || fail_with_logs "node $i did not start in ${KAFKA_START_SECONDS}s"
      sleep 0.3
    done
  done
}

start() {
  if ! port_open "$(client_port 1)"; then
    local jars cid i t0=$SECONDS
    jars=$(jars_dir)
    rm -rf "$cluster"
    mkdir -p "$cluster"
    cid=$(java -cp "$jars/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    local formats=()
    for ((i = 1; i <= KAFKA_NODES; i++)); do # formatting is a JVM start each: in parallel
      : > "$work/kafka-$i.log"
      write_node "$i" "$jars" "$cid" & formats+=($!)
    done
    for i in "${formats[@]}"; do wait "$i" || fail_with_logs "formatting a node's storage failed"; done
    for ((i = 1; i <= KAFKA_NODES; i++)); do "$cluster/node-$i/start"; done
    wait_started
    log "$KAFKA_NODES nodes up in $((SECONDS - t0)) s ($(bootstrap))"
  fi
  # The adapter's topic defaults (3 partitions, replication factor 3, min ISR 2) are the ones
  # above, so the URL is only the bootstrap list; a smaller cluster says what it can hold.
  local spec=""
  if [ "$KAFKA_REPLICATION_FACTOR" != 3 ] || [ "$KAFKA_MIN_ISR" != 2 ]; then
    spec="?replication_factor=$KAFKA_REPLICATION_FACTOR&min_insync_replicas=$KAFKA_MIN_ISR"
  fi
  echo "export EMPORIUM_TEST_KAFKA_URL='kafka://$(bootstrap)$spec'"
  echo "export EMPORIUM_TEST_KAFKA_CLUSTER_DIR=$cluster"
}

stop() {
  local f pids=()
  for f in "$cluster"/node-*/pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null && pids+=("$(cat "$f")")
  done
  local deadline=$((SECONDS + 20)) p
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null; do
      ((SECONDS < deadline)) || { kill -9 "$p" 2>/dev/null || true; break; }
      sleep 0.2
    done
  done
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
