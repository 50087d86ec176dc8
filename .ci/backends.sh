#!/usr/bin/env bash
# Installs and starts the real servers the test suite needs, with no Docker:
# PostgreSQL and Redis from Debian's packages, a three-node KRaft Kafka cluster from
# Maven Central jars run with the machine's JDK (.ci/kafka-cluster.sh), and moto's S3 server
# from PyPI.
# Prints `export NAME=value` lines for the URLs; source its output or eval it.
# Usage: eval "$(.ci/backends.sh start)"   |   .ci/backends.sh stop
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${EMPORIUM_CI_WORK:-$here/work}
mkdir -p "$work"
log() { echo "[backends] $*" >&2; }

PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
S3_PORT=${S3_PORT:-55000}

need_apt() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  # The observability tests: promtool (rules), amtool and a real Alertmanager (routing).
  command -v promtool >/dev/null || missing+=(prometheus)
  { command -v amtool && command -v prometheus-alertmanager; } >/dev/null || missing+=(prometheus-alertmanager)
  # The browser tests (tests/browser) drive Debian's Chromium; Playwright cannot download one.
  command -v chromium >/dev/null || missing+=(chromium)
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

start_kafka() { # a three-node KRaft cluster: see .ci/kafka-cluster.sh
  "$here/kafka-cluster.sh" start
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
  "$here/kafka-cluster.sh" stop || true
  for f in moto; do
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
