#!/usr/bin/env bash
# Installs and starts the real servers the test suite needs, with no Docker:
# PostgreSQL and Redis from Debian's packages, a single-node KRaft Kafka broker from
# Maven Central jars run with the machine's JDK, and moto's S3 server from PyPI.
# Prints `export NAME=value` lines for the URLs; source its output or eval it.
# Usage: eval "$(.ci/backends.sh start)"   |   .ci/backends.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_CI_WORK:-$here/work}
mkdir -p "$work"
log() { echo "[backends] $*" >&2; }

PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
KAFKA_PORT=${KAFKA_PORT:-59092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-59093}
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
S3_PORT=${S3_PORT:-55000}

need_apt() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    else
      sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
  fi
}

wait_port() { # host port seconds
  local deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    ((SECONDS < deadline)) || { log "port $2 did not open"; return 1; }
    sleep 0.3
  done
}

start_postgres() {
  local bin; bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  local data=$work/pg
  local runas=()
  if [ "$(id -u)" = 0 ]; then runas=(runuser -u postgres --); chown -R postgres "$work" 2>/dev/null || true; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"; [ "$(id -u)" = 0 ] && chown postgres "$data"
    "${runas[@]}" "$bin/initdb" -D "$data" -U emporium --auth=trust -E UTF8 >/dev/null
  fi
  if ! "${runas[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    "${runas[@]}" "$bin/pg_ctl" -D "$data" -l "$work/pg.log" -w \
      -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 -c wal_level=logical" start >&2
  fi
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U emporium -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='emporium_test'" | grep -q 1 ||
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U emporium -d postgres -qc "CREATE DATABASE emporium_test" >&2
  echo "export EMPORIUM_TEST_POSTGRES_URL=postgresql+asyncpg://emporium@127.0.0.1:$PG_PORT/emporium_test"
}

start_redis() {
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --daemonize yes --logfile "$work/redis.log" --pidfile "$work/redis.pid" >&2
    wait_port 127.0.0.1 "$REDIS_PORT" 20
  fi
  echo "export EMPORIUM_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

start_kafka() {
  local jars=$work/kafka-jars-$KAFKA_VERSION
  if [ ! -f "$jars/.complete" ]; then
    log "resolving kafka_2.13:$KAFKA_VERSION from Maven Central"
    mkdir -p "$work/kafka-pom" "$jars"
    cat > "$work/kafka-pom/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>emporium.ci</groupId><artifactId>kafka-broker</artifactId><version>1</version><packaging>pom</packaging>
<dependencies><dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
<version>$KAFKA_VERSION</version></dependency></dependencies></project>
POM
    (cd "$work/kafka-pom" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$jars" >&2)
    touch "$jars/.complete"
  fi
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then
    local dir=$work/kafka; rm -rf "$dir"; mkdir -p "$dir/data"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
    local cid; cid=$(java -cp "$jars/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
    java -cp "$jars/*" kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" --standalone >&2
    nohup java -Xmx512m -Xms256m -cp "$jars/*" kafka.Kafka "$dir/server.properties" \
      > "$work/kafka.log" 2>&1 &
    echo $! > "$work/kafka.pid"
    wait_port 127.0.0.1 "$KAFKA_PORT" 90
  fi
  echo "export EMPORIUM_TEST_KAFKA_URL=kafka://127.0.0.1:$KAFKA_PORT"
}

start_s3() {
  local moto=${MOTO_SERVER:-moto_server}
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
    command -v "$moto" >/dev/null || { log "moto_server not found (run make venv first)"; return 0; }
    nohup "$moto" -H 127.0.0.1 -p "$S3_PORT" > "$work/moto.log" 2>&1 &
    echo $! > "$work/moto.pid"
    wait_port 127.0.0.1 "$S3_PORT" 30
  fi
  echo "export EMPORIUM_TEST_S3_URL='s3://emporium-test?endpoint_url=http://127.0.0.1:$S3_PORT&region=us-east-1'"
}

stop_all() {
  for f in kafka moto; do
    [ -f "$work/$f.pid" ] && kill "$(cat "$work/$f.pid")" 2>/dev/null || true
  done
  [ -f "$work/redis.pid" ] && kill "$(cat "$work/redis.pid")" 2>/dev/null || true
  local bin; bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")
  if [ -f "$work/pg/PG_VERSION" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$work/pg" stop -m fast >&2 || true
    else "$bin/pg_ctl" -D "$work/pg" stop -m fast >&2 || true; fi
  fi
}

case "${1:-start}" in
  start) need_apt; start_postgres; start_redis; start_kafka; start_s3 ;;
  stop) stop_all ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
